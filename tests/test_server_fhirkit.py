"""A vendor's walk-through with fhir-kit-client (npm, 2.x) against a real `kroniker serve`: the Node script
tests/js/fhirkit_walkthrough.mjs does what a vendor's integration does (capabilities, create, update, an MHD ITI-65
transaction, search with paging, read, read back, vread, a JSON Patch withdrawal, the audit log) and prints what it
got; this test checks that against what it sent. fhir-kit-client is installed with the machine's npm into a cache
directory (no workarounds in the script: what the client trips on is fixed in the server). Without Node.js or npm
the test is skipped, saying why; in CI (CI=true) it fails instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kroniker.reference_server.tokens import issue, load_or_create_key
from kroniker.validators.packages import PackageCache
from tests.conftest import IN_CI
from tests.mhd_support import provide_bundle
from tests.server_process import ServerProcess
from tests.server_support import ADMIN, citizen, new_patient, note, source

pytestmark = pytest.mark.network

SCRIPT = Path(__file__).parent / "js" / "fhirkit_walkthrough.mjs"
NPM_PREFIX = Path.home() / ".cache" / "kroniker-test-npm" / "fhir-kit-client-2"  # its own: --no-save prunes others


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"{why} (CI=true: the fhir-kit-client walk-through must run)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def fhir_kit_client() -> Path:
    """The node_modules directory holding fhir-kit-client 2.x (installed once per machine, in a cache)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are needed for the fhir-kit-client walk-through")
    done = subprocess.run([str(npm), "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NPM_PREFIX),
                           "fhir-kit-client@2"], capture_output=True, text=True, timeout=600, check=False)
    modules = NPM_PREFIX / "node_modules"
    if done.returncode != 0 or not (modules / "fhir-kit-client").is_dir():
        _unavailable(f"npm could not install fhir-kit-client@2: {done.stderr[-500:]}")
    return modules


def test_a_vendor_walks_through_a_fresh_server_with_fhir_kit_client(
        fhir_kit_client: Path, tmp_path: Path, package_cache: PackageCache) -> None:
    p, stranger = new_patient("Frida", "Kit"), new_patient("Sigurd", "Fremmed")
    to_create, to_update, in_transaction = note(p), note(p), note(p)
    files = {"DOC_CREATE": to_create, "DOC_UPDATE": to_update, "TRANSACTION": provide_bundle(in_transaction)}
    for name, body in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    # The script beside the installed client, as a vendor's project has it (ESM resolves node_modules from there).
    run_dir = tmp_path / "vendor"
    run_dir.mkdir()
    shutil.copy(SCRIPT, run_dir / SCRIPT.name)
    (run_dir / "node_modules").symlink_to(fhir_kit_client, target_is_directory=True)

    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home") as server:
        server.start()
        key = load_or_create_key(server.home / "token.key")
        env = {**os.environ, "FHIR_BASE": f"{server.url}/fhir", "CPR": p.cpr,
               "SOURCE_TOKEN": issue(key, source()), "CITIZEN_TOKEN": issue(key, citizen(p)),
               "ADMIN_TOKEN": issue(key, ADMIN), "STRANGER_TOKEN": issue(key, citizen(stranger)),
               **{name: str(tmp_path / f"{name}.json") for name in files}}
        done = subprocess.run(["node", SCRIPT.name], cwd=run_dir, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:] + server.log_tail()
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    assert got["capabilities"]["resourceType"] == "CapabilityStatement"
    assert got["capabilities"]["fhirVersion"] == "4.0.1"
    assert {"create", "read", "update"} <= set(got["capabilities"]["bundle"])
    assert "transaction" in got["capabilities"]["system"]
    assert got["created"]["resourceType"] == "DocumentReference"
    # update as create: the document, under the id the vendor gave it
    assert got["updated"] == {"resourceType": "Bundle", "id": to_update["id"], "type": "document"}
    assert got["updatedAgain"]["status"] == 409
    assert got["updatedAgain"]["resourceType"] == "OperationOutcome"
    assert "document-immutable" in got["updatedAgain"]["codes"]
    # ITI-65: one response per request entry (List, DocumentReference, Binary), each created
    assert got["transaction"]["type"] == "transaction-response"
    assert got["transaction"]["statuses"] == ["201 Created"] * 3
    # three documents about the patient, two to a page, oldest first: every one once, by following next links
    assert got["search"]["total"] == 3
    assert got["search"]["pages"] == 2
    assert len(got["search"]["ids"]) == 3 and len(set(got["search"]["ids"])) == 3
    assert got["search"]["ids"][0] == got["created"]["id"]
    assert got["search"]["ids"][1] == to_update["id"]
    assert got["search"]["ids"][2] in got["transaction"]["locations"][1]
    assert got["read"] == {"id": got["created"]["id"], "versionId": "1", "status": "current"}
    assert got["readBack"] == {"resourceType": "Bundle", "id": to_update["id"],
                               "identifier": to_update["identifier"]["value"]}
    assert got["vread"] == {"id": got["created"]["id"], "versionId": "1"}
    assert got["readByOther"]["status"] == 404  # another citizen: not even whether it exists
    # withdrawn by JSON Patch (RFC 6902: the test holds, the replace applies): version 2, the reason on it
    assert got["patched"] == {"id": to_update["id"], "status": "entered-in-error", "versionId": "2",
                              "description": "Forkert patient – notatet hører til en anden"}
    assert got["readWithdrawn"]["status"] == 410  # entered in error: gone for its readers
    assert got["patchedAgain"]["status"] == 412  # If-Match names version 1, which is no longer the document's
    assert got["patchedAgain"]["resourceType"] == "OperationOutcome"
    assert got["audit"]["resourceType"] == "Bundle" and got["audit"]["total"] > 0
    assert got["audit"]["actions"].count("ITI-65") == 3  # the three documents shared
    # MinLog shows professionals' look-ups (DDS); the citizen's own reads and the GP system's sharing are not
    assert got["minlog"]["total"] == 0
