"""The reference server's audit log and the citizen's MinLog: every request is recorded, nothing in the API changes
or deletes a record, `kroniker audit verify` finds a record changed or removed directly in the database, and MinLog
shows the citizen the professionals' look-ups (værdispring as such) and nothing a general block answered with
nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.db import audit_events
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import Principal
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.server_support import (
    ADMIN,
    HOSPITAL_SOR,
    OTHER_CLINIC,
    Patient,
    Server,
    citizen,
    clinician,
    composition,
    new_patient,
    note,
    source,
)

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE = "X-Consent-Override"
_doctors = iter(range(10_000, 99_999))


def new_doctor() -> Principal:
    return clinician(f"A{next(_doctors)}", HOSPITAL_SOR, name="Overlæge Aud Revision")


def all_rows(server: Server) -> list[dict[str, Any]]:
    return list(audit.iter_all(server.engine))


def recorded(server: Server, action: Callable[[], Any]) -> list[dict[str, Any]]:
    """The audit records one request added."""
    seen = len(all_rows(server))
    action()
    return all_rows(server)[seen:]


def retrieve_url(doc: dict[str, Any]) -> str:
    return doc["content"][0]["attachment"]["url"]


# -- every request is an AuditEvent ------------------------------------------------------------------------------

def test_every_request_is_one_audit_event(server: Server) -> None:
    p = new_patient("Aase", "Audit")
    doctor, stranger = new_doctor(), new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    doc = note(p)
    shared: dict[str, Any] = {}
    invalid = note(p)
    composition(invalid)["title"] = "Journalnotat"

    def share() -> None:
        shared.update(server.shared(source(), doc))

    # (what the caller did, the request, the action, the outcome, the actor) — FHIR AuditEvent outcome 0/4
    steps: list[tuple[str, Callable[[], Any], str, str, str]] = [
        ("shares a note", share, "submit", "0", f"sor:{s.GP_CLINIC.sor}"),
        ("shares it again", lambda: server.submit(source(), doc), "submit", "0", f"sor:{s.GP_CLINIC.sor}"),
        ("shares an invalid note", lambda: server.submit(source(), invalid), "refused", "4",
         f"sor:{s.GP_CLINIC.sor}"),
        ("searches own documents", lambda: server.search(citizen(p), p), "search", "0", f"cpr:{p.cpr}"),
        ("reads the metadata", lambda: server.get(f"/fhir/DocumentReference/{shared['id']}", citizen(p)),
         "read-metadata", "0", f"cpr:{p.cpr}"),
        ("retrieves the document", lambda: server.client.get(retrieve_url(shared), headers=server.auth(citizen(p))),
         "retrieve", "0", f"cpr:{p.cpr}"),
        ("looks up without a relation", lambda: server.search(stranger, p), "refused", "4",
         f"autorisation:{stranger.auth_id}"),
        ("looks up with værdispring", lambda: server.search(doctor, p, headers={OVERRIDE: "consent"}), "search", "0",
         f"autorisation:{doctor.auth_id}"),
        ("asks without a token", lambda: server.search(None, p), "refused", "4", "anonymous"),
        ("asks with a forged token", lambda: server.client.get(
            "/fhir/DocumentReference", headers={"Authorization": "Bearer abc.def.ghi"}), "refused", "4", "anonymous"),
        ("blocks", lambda: server.block(citizen(p), kind="general"), "block", "0", f"cpr:{p.cpr}"),
        ("withdraws the note", lambda: server.request(
            "PATCH", f"/fhir/DocumentReference/{shared['id']}", ADMIN,
            json={"status": "entered-in-error", "reason": "forkert patient"}), "status", "0", "admin:drift"),
        ("retrieves a withdrawn note", lambda: server.client.get(
            retrieve_url(shared), headers=server.auth(citizen(p))), "retrieve", "4", f"cpr:{p.cpr}"),
        ("reads the audit log", lambda: server.get("/fhir/AuditEvent", ADMIN, params={"_count": "1"}), "audit", "0",
         "admin:drift"),
    ]
    for what, request, action, outcome, actor in steps:
        new = recorded(server, request)
        assert [(r["action"], r["outcome"], r["actor"]) for r in new] == [(action, outcome, actor)], what


def test_audit_events_name_the_ihe_transaction_the_patient_and_the_documents(server: Server) -> None:
    p = new_patient("Bodil", "Bog")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))
    server.search(doctor, p)
    server.client.get(retrieve_url(d), headers=server.auth(doctor))
    events = server.audit_log(p)
    by_code = {e["subtype"][0]["code"]: e for e in events if e["subtype"][0]["code"].startswith("ITI-")}
    assert set(by_code) >= {"ITI-65", "ITI-67", "ITI-68"}
    for code in ("ITI-65", "ITI-67", "ITI-68"):
        e = by_code[code]
        assert e["outcome"] == "0"
        patients = [x["what"]["identifier"]["value"] for x in e["entity"] if "identifier" in x["what"]]
        assert patients == [p.cpr]
        assert f"DocumentReference/{d['id']}" in [x["what"].get("reference") for x in e["entity"]]
    reader = by_code["ITI-68"]["agent"][0]
    assert reader["who"]["identifier"]["value"] == doctor.auth_id
    assert reader["location"]["identifier"]["value"] == HOSPITAL_SOR


def test_vaerdispring_is_in_the_audit_log_with_its_reason(server: Server) -> None:
    p = new_patient("Carla", "Cykel")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    server.shared(source(), note(p))
    server.block(citizen(p), kind="general")
    [row] = recorded(server, lambda: server.search(doctor, p, headers={OVERRIDE: "not-contactable"}))
    event = next(e for e in server.audit_log(p) if e["id"] == row["id"])
    assert "not-contactable" in {c["code"] for pe in event.get("purposeOfEvent", []) for c in pe["coding"]}
    assert any(pe.get("text") == "værdispring" for pe in event["purposeOfEvent"])


def test_the_admin_reads_the_whole_log_and_a_citizen_only_their_minlog(server: Server) -> None:
    a, b = new_patient("Lis", "Log"), new_patient("Max", "Mølle")
    for p in (a, b):
        server.shared(source(), note(p))
    rows = all_rows(server)
    r = server.get("/fhir/AuditEvent", ADMIN, params={"_count": "5"})
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["total"] == len(rows)
    assert [e["resource"]["id"] for e in bundle["entry"]] == [row["id"] for row in reversed(rows[-5:])]
    chain = [x["valueString"] for x in bundle["entry"][0]["resource"]["extension"] if x["url"].endswith("chain")]
    assert chain == [f"{rows[-1]['seq']}:{rows[-1]['hash']}"]
    mine = server.get("/fhir/AuditEvent", citizen(a)).json()
    assert mine["total"] == 0  # sharing is not a professional's look-up


# -- append-only ------------------------------------------------------------------------------------------------

def test_no_request_changes_or_removes_a_record(server: Server) -> None:
    p = new_patient("Dan", "Dæmning")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))
    before = all_rows(server)
    some_id = before[-1]["id"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/fhir/AuditEvent", f"/fhir/AuditEvent/{some_id}"):
            r = server.request(method, path, ADMIN, json={"resourceType": "AuditEvent"})
            assert r.status_code in (404, 405), (method, path)
            assert s.is_outcome(r)
    # Everything else the API can do, done once more: blocks set and lifted, a replacement, a withdrawal.
    bid = server.block(citizen(p), kind="general").json()["id"]
    server.request("DELETE", f"/blocks/{bid}", citizen(p))
    new = server.shared(source(), note(p), replaces=d["id"])
    server.request("PATCH", f"/fhir/DocumentReference/{new['id']}", ADMIN,
                   json={"status": "entered-in-error", "reason": "test"})
    after = all_rows(server)
    assert after[:len(before)] == before
    assert len(after) > len(before)
    assert audit.verify(server.engine) == []


def test_an_attempt_to_delete_the_audit_log_is_itself_recorded(server: Server) -> None:
    someone = new_doctor()
    new = recorded(server, lambda: server.request("DELETE", "/fhir/AuditEvent", someone))
    assert [(r["action"], r["actor"]) for r in new] == [("refused", f"autorisation:{someone.auth_id}")]


# -- the hash chain and `kroniker audit verify` -----------------------------------------------------------------

def verify_cli(url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRONIKER_HOME": str(home)}
    env.pop("KRONIKER_DATABASE", None)
    return subprocess.run([sys.executable, "-m", "kroniker", "audit", "verify", "--database", url],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


def _change(conn: sa.Connection, seq: int) -> None:
    conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(actor="autorisation:NOBODY"))


def _hide_from_minlog(conn: sa.Connection, seq: int) -> None:
    conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(minlog=False))


def _delete(conn: sa.Connection, seq: int) -> None:
    conn.execute(audit_events.delete().where(audit_events.c.seq == seq))


def _rehash(conn: sa.Connection, seq: int) -> None:
    """Change a record and give it a hash that fits its new content: the next record no longer chains to it."""
    row = dict(conn.execute(sa.select(audit_events).where(audit_events.c.seq == seq)).mappings().one())
    row["reason"] = "nothing to see"
    row["hash"] = hashlib.sha256(audit._canonical(audit._hashed_fields(row))).hexdigest()
    conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(reason=row["reason"],
                                                                               hash=row["hash"]))


TAMPERING: dict[str, tuple[Callable[[sa.Connection, int], None], str, int]] = {
    # how, which record (a MinLog one or the last), the record verify must name (relative: 0 = that one, 1 = next)
    "a record changed": (_change, "minlog", 0),
    "a look-up hidden from MinLog": (_hide_from_minlog, "minlog", 0),
    "a record removed": (_delete, "minlog", 0),
    "a record changed and rehashed": (_rehash, "minlog", 1),
    "the last record removed": (_delete, "last", 0),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_audit_verify_finds_a_record_tampered_with_in_the_database(
        tampering: str, database_url: str, tmp_path: Path, package_cache: PackageCache) -> None:
    settings = Settings(home=tmp_path, database_url=database_url, package_cache=package_cache.root)
    with s.running(settings) as server:
        p = new_patient("Eva", "Efterspor")
        doctor = new_doctor()
        server.relate(p, clinician_id=doctor.auth_id)
        server.shared(source(), note(p))
        server.search(doctor, p)
        server.search(new_doctor(), p)  # refused
        server.search(citizen(p), p)
        engine = server.engine
        rows = all_rows(server)
    intact = verify_cli(database_url, tmp_path)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact" in intact.stdout
    how, which, named = TAMPERING[tampering]
    seq = rows[-1]["seq"] if which == "last" else next(r["seq"] for r in rows if r["minlog"])
    with engine.begin() as conn:
        how(conn, seq)
    found = verify_cli(database_url, tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"record {seq + named}:" in found.stdout
    assert "Traceback" not in found.stderr
    engine.dispose()


# -- MinLog ------------------------------------------------------------------------------------------------------------

def look_ups(server: Server, patient: Patient) -> list[tuple[str, str]]:
    """MinLog as (who, IHE transaction) pairs."""
    return [(e["agent"][0]["who"]["identifier"]["value"], e["subtype"][0]["code"]) for e in server.minlog(patient)]


def test_minlog_shows_the_professionals_look_ups_and_nothing_else(server: Server) -> None:
    p = new_patient("Frede", "Fjeld")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))  # the GP system shares: not a look-up
    server.search(citizen(p), p)  # the citizen's own: not a professional's
    server.client.get(retrieve_url(d), headers=server.auth(citizen(p)))
    server.audit_log(p)  # the admin's
    server.search(new_doctor(), p)  # refused: nothing was seen
    server.search(doctor, p)
    server.client.get(retrieve_url(d), headers=server.auth(doctor))
    assert sorted(look_ups(server, p)) == [(doctor.auth_id, "ITI-67"), (doctor.auth_id, "ITI-68")]
    entry = server.minlog(p)[0]
    assert entry["agent"][0]["location"]["identifier"]["value"] == HOSPITAL_SOR
    assert "purposeOfEvent" not in entry or all(pe.get("text") != "værdispring" for pe in entry["purposeOfEvent"])


def test_minlog_shows_vaerdispring_as_vaerdispring(server: Server) -> None:
    p = new_patient("Grete", "Gran")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    server.shared(source(), note(p))
    server.block(citizen(p), kind="professional", clinician=doctor.auth_id)
    server.search(doctor, p, headers={OVERRIDE: "vital-interest"})
    [entry] = server.minlog(p)
    assert entry["agent"][0]["who"]["identifier"]["value"] == doctor.auth_id
    purposes = entry.get("purposeOfEvent", [])
    assert any(pe.get("text") == "værdispring" for pe in purposes)
    assert "vital-interest" in {c["code"] for pe in purposes for c in pe["coding"]}


@pytest.mark.parametrize("block", [{"kind": "general"}, {"kind": "professional"}])
def test_minlog_shows_nothing_for_look_ups_a_block_answered_with_nothing(server: Server,
                                                                         block: dict[str, str]) -> None:
    p = new_patient("Hilda", "Hegn")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))
    body = {**block, "clinician": doctor.auth_id} if block["kind"] == "professional" else block
    assert server.block(citizen(p), **body).status_code == 201
    assert server.search(doctor, p).json()["total"] == 0
    assert server.client.get(retrieve_url(d), headers=server.auth(doctor)).status_code == 404
    assert server.minlog(p) == []


def test_minlog_shows_look_ups_that_a_block_filtered(server: Server) -> None:
    p = new_patient("Iben", "Ild")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    server.shared(source(), note(p))
    server.shared(source(OTHER_CLINIC), note(p, OTHER_CLINIC))
    server.block(citizen(p), kind="organisation", organisation=OTHER_CLINIC.sor)
    server.search(doctor, p)
    assert look_ups(server, p) == [(doctor.auth_id, "ITI-67")]


def test_minlog_is_the_citizens_own(server: Server) -> None:
    mine, theirs = new_patient("Jens", "Jyde"), new_patient("Kaja", "Kyst")
    doctor = new_doctor()
    for p in (mine, theirs):
        server.relate(p, clinician_id=doctor.auth_id)
        server.shared(source(), note(p))
    server.search(doctor, theirs)
    assert server.minlog(mine) == []
    server.search(doctor, mine)
    events = server.minlog(mine)
    assert len(events) == 1
    assert theirs.cpr not in str(events)
