"""A vendor's walk-through with fhirpy (the FHIR client library from PyPI) against the server over real HTTP:
capabilities, submit (POST, a transaction, save() and create() as PUT), search, page, read, read back (refresh), vread
and history, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from kroniker.reference_server.tokens import Principal, issue, load_or_create_key
from kroniker.validators.packages import PackageCache
from tests.server_process import ServerProcess
from tests.server_support import ADMIN, CPR_SYSTEM, Server, citizen, new_patient, note, source

pytestmark = pytest.mark.network


@dataclass
class Target:
    url: str
    key: bytes


def client(server: Server | Target, who: Principal) -> SyncFHIRClient:
    return SyncFHIRClient(f"{server.url}/fhir", authorization=f"Bearer {issue(server.key, who)}")


def test_a_vendor_walks_through_the_server_with_fhirpy(server: Server) -> None:
    walk_through(server)


def test_a_vendor_walks_through_a_fresh_kroniker_serve_with_fhirpy(tmp_path: Path,
                                                                   package_cache: PackageCache) -> None:
    """The same walk-through against `kroniker serve` started as a user starts it (its own process)."""
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home") as process:
        process.start()
        walk_through(Target(process.url, load_or_create_key(process.home / "token.key")))


def walk_through(server: Server | Target) -> None:
    patient = new_patient("Ole", "Odde")
    gp = client(server, source())
    cs = gp.execute("metadata", method="get")
    assert cs["resourceType"] == "CapabilityStatement"
    made = [gp.execute("Bundle", method="post", data=note(patient))["id"] for _ in range(3)]
    # a transaction holding the document, as POST [base]
    tx = gp.execute("", method="post", data={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": note(patient), "request": {"method": "POST", "url": "Bundle"}}]})
    assert tx["type"] == "transaction-response"
    made.append(tx["entry"][0]["resource"]["id"])
    # fhirpy's ordinary save() and create() of a document with an id: PUT [base]/Bundle/{id} (update as create)
    saved = gp.resource("Bundle", **note(patient))
    saved.save()
    assert saved["type"] == "document"
    created = gp.resource("Bundle", **note(patient)).create()
    made += [saved.id, created.id]
    saved["timestamp"] = "2026-11-21T00:06:00+01:00"
    with pytest.raises(OperationOutcome):  # documents are immutable: a new document replaces one
        saved.save()

    me = client(server, citizen(patient))
    docs = me.resources("DocumentReference").search(**{"patient.identifier": f"{CPR_SYSTEM}|{patient.cpr}"})
    assert docs.count() == 6
    newest_first = [d.id for d in docs.sort("-date").limit(10).fetch()]
    assert newest_first == made[::-1]
    assert [d.id for d in docs.sort("date").limit(3).fetch_all()] == made  # pages of 3 joined by next links
    assert me.reference("Bundle", saved.id).to_resource()["id"] == saved.id  # the document read back
    doc = me.reference("DocumentReference", made[0]).to_resource()
    assert doc["meta"]["versionId"] == "1"
    assert doc.refresh()["id"] == made[0]
    v1 = me.execute(f"DocumentReference/{made[0]}/_history/1", method="get")
    assert v1["status"] == "current"
    history = me.execute(f"DocumentReference/{made[0]}/_history", method="get")
    assert history["type"] == "history"

    log = client(server, ADMIN).resources("AuditEvent").search(**{"patient.identifier": patient.identifier})
    assert log.count() > 0
