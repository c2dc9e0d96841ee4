"""The reference server's audit log and the citizen's MinLog: every request is recorded, nothing in the API changes
or deletes a record, `kroniker audit verify` finds a record changed or removed directly in the database, and MinLog
shows the citizen the professionals' look-ups (værdispring as such) and nothing a general block answered with
nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.db import audit_events, audit_head, documents, make_engine
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import Principal
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.mhd_support import provide_bundle
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


def test_a_submission_sets_read_names_its_ihe_transaction(server: Server) -> None:
    """GET /fhir/List/{id} reads a SubmissionSet, the List of IHE MHD's Find Document Lists (ITI-66), as a
    DocumentReference read is Find Document References' (ITI-67): its AuditEvent names the transaction with IHE's
    event type code, and the read is a FHIR RESTful read (audit-event-type `rest`, action R)."""
    p = new_patient("Lis", "Liste")
    doctor = new_doctor()
    server.relate(p, clinician_id=doctor.auth_id)
    r = server.request("POST", "/fhir", source(), content=json.dumps(provide_bundle(note(p))).encode(),
                       headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    location = r.json()["entry"][0]["response"]["location"]
    list_id = location.split("/fhir/List/", 1)[1].split("/", 1)[0]
    assert server.get(f"/fhir/List/{list_id}", doctor).status_code == 200
    [event] = [e for e in server.audit_log(p) if e["subtype"][0]["code"] == "ITI-66"]
    assert event["subtype"] == [{"system": "urn:ihe:event-type-code", "code": "ITI-66",
                                 "display": "Find Document Lists (read)"}]
    assert event["type"] == {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"}
    assert event["action"] == "R" and event["outcome"] == "0"
    assert event["agent"][0]["who"]["identifier"]["value"] == doctor.auth_id
    # No read of anything under kroniker's own action codes, which name no IHE transaction.
    assert not [e for e in server.audit_log(p) if e["subtype"][0]["system"] == "urn:kroniker:action"
                and e["subtype"][0]["code"].startswith("read-")]
    # The citizen's MinLog shows the doctor's read as that transaction too.
    assert ("ITI-66" in {e["subtype"][0]["code"] for e in server.minlog(p)
                         if e["agent"][0]["who"]["identifier"]["value"] == doctor.auth_id})


def test_an_invalid_document_is_audited_with_the_path_it_came_by(server: Server) -> None:
    """The refusal of an invalid document records the request's own method and path, whichever route took it."""
    p = new_patient("Ivan", "Ugyldig")
    invalid = note(p)
    composition(invalid)["title"] = "Journalnotat"  # COMP-TITLE: the title must name the patient's CPR
    body = json.dumps(invalid).encode()
    json_type = {"Content-Type": "application/fhir+json"}
    bundle_id = invalid["id"]
    ways = [
        ("POST", "/fhir/Bundle", lambda: server.request("POST", "/fhir/Bundle", source(), content=body,
                                                        headers=json_type)),
        ("POST", "/fhir", lambda: server.request("POST", "/fhir", source(),
                                                 content=json.dumps(provide_bundle(invalid)).encode(),
                                                 headers=json_type)),
        ("PUT", f"/fhir/Bundle/{bundle_id}", lambda: server.request("PUT", f"/fhir/Bundle/{bundle_id}", source(),
                                                                    content=body, headers=json_type)),
    ]
    for method, path, send in ways:
        new = recorded(server, send)
        refused = [r for r in new if r["reason"] == "invalid-document"]
        assert len(refused) == 1, (path, new)
        detail = json.loads(refused[0]["detail"])
        assert (detail["method"], detail["path"], detail["status"]) == (method, path, 422)
        assert "COMP-TITLE" in detail["errors"]


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
    assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []


def test_an_attempt_to_delete_the_audit_log_is_itself_recorded(server: Server) -> None:
    someone = new_doctor()
    new = recorded(server, lambda: server.request("DELETE", "/fhir/AuditEvent", someone))
    assert [(r["action"], r["actor"]) for r in new] == [("refused", f"autorisation:{someone.auth_id}")]


# -- the keyed chain and `kroniker audit verify`: 13 kinds of tampering by someone with the database's superuser ---

def audit_cli(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRONIKER_HOME": str(home)}
    for name in ("KRONIKER_DATABASE", "KRONIKER_LANG"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "kroniker", "audit", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


def verify_cli(url: str, home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return audit_cli(home, "verify", "--database", url, "--lang", "en", *args)


@contextmanager
def attacker(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection as the database's superuser has it: the append-only triggers are dropped (SQLite) or not
    fired (PostgreSQL's replica role) — the very access `audit verify` must still catch."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").all():
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        yield conn


@dataclass
class Scene:
    """A log with two shared notes, look-ups and a refusal; a checkpoint; then more look-ups."""

    engine: sa.Engine
    home: Path
    rows: list[dict[str, Any]]
    checkpoint: dict[str, Any]
    other_patient: str

    @property
    def last(self) -> int:
        return self.rows[-1]["seq"]

    @property
    def minlog(self) -> int:
        """The first professional's look-up (shown in MinLog)."""
        return next(r["seq"] for r in self.rows if r["minlog"])

    @property
    def cp(self) -> int:
        return self.checkpoint["seq"]

    def doc(self) -> tuple[str, int]:
        """The first stored document and the seq of the record that stored it."""
        first = next(r for r in self.rows if r["action"] == "submit")
        return json.loads(first["documents"])[0], first["seq"]


def _head(conn: sa.Connection, seq: int) -> None:
    """Point the head at a record (what an attacker does to make a shortened or lengthened log look whole)."""
    h = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq == seq)).scalar_one()
    conn.execute(audit_head.update().values(seq=seq, hash=h))


def _all(conn: sa.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings()]


def _plain_sha256(row: dict[str, Any]) -> str:
    fields = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items() if k != "hash"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _rewrite(conn: sa.Connection, sc: Scene, hasher: Callable[[dict[str, Any]], str]) -> None:
    """Change one record, then hash the whole chain anew with `hasher` (every record chains to the one before)."""
    rows = _all(conn)
    conn.execute(audit_events.delete())
    prev = audit.GENESIS
    for r in rows:
        if r["seq"] == sc.minlog:
            r["reason"] = "nothing to see"
        r["prev_hash"] = prev
        r["hash"] = prev = hasher(r)
        conn.execute(audit_events.insert().values(**r))
    conn.execute(audit_head.update().values(seq=rows[-1]["seq"], hash=prev))


def _cut(conn: sa.Connection, sc: Scene) -> None:
    conn.execute(audit_events.delete().where(audit_events.c.seq >= sc.cp - 1))


def _swap(conn: sa.Connection, sc: Scene) -> None:
    a, b = (dict(conn.execute(sa.select(audit_events).where(audit_events.c.seq == n)).mappings().one())
            for n in (sc.minlog, sc.minlog + 1))
    conn.execute(audit_events.delete().where(audit_events.c.seq.in_((a["seq"], b["seq"]))))
    conn.execute(audit_events.insert().values(**{**a, "seq": b["seq"], "id": b["id"]}))
    conn.execute(audit_events.insert().values(**{**b, "seq": a["seq"], "id": a["id"]}))


def _forge(conn: sa.Connection, sc: Scene) -> None:
    head = _all(conn)[-1]
    forged = {**head, "seq": sc.last + 1, "id": str(uuid.uuid4()), "actor": "autorisation:ALIBI",
              "prev_hash": head["hash"]}
    forged["hash"] = _plain_sha256(forged)
    conn.execute(audit_events.insert().values(**forged))
    _head(conn, sc.last + 1)


def _gap(conn: sa.Connection, sc: Scene) -> None:
    conn.execute(audit_events.update().where(audit_events.c.seq == sc.last).values(seq=sc.last + 3))
    _head(conn, sc.last + 3)


def _duplicate(conn: sa.Connection, sc: Scene) -> None:
    copy = dict(conn.execute(sa.select(audit_events).where(audit_events.c.seq == sc.minlog)).mappings().one())
    conn.execute(audit_events.insert().values(**{**copy, "seq": sc.last + 1, "id": str(uuid.uuid4())}))
    _head(conn, sc.last + 1)


def _document(conn: sa.Connection, sc: Scene, **values: Any) -> None:
    doc_id, _ = sc.doc()
    conn.execute(documents.update().where(documents.c.id == doc_id).values(**values))


def _swap_key(conn: sa.Connection, sc: Scene) -> None:
    """The attacker also has the data directory: a key of their own, and the whole chain rewritten with it."""
    new_key = b"f" * 64
    (sc.home / "audit.key").write_bytes(new_key)
    _rewrite(conn, sc, lambda r: audit.keyed_hash(new_key, r))


OTHER_KEY = b"0123456789abcdef" * 4
MUTATED = b'{"resourceType":"Bundle"}'


def _expected(kind: str, sc: Scene) -> tuple[bool, list[tuple[str, int | None, dict[str, Any]]]]:
    """(whether the checkpoint is needed, the lines `audit verify` must print: message key, record, values)."""
    doc_id, stored_by = sc.doc()
    when = {"time": sc.checkpoint["time"]}
    return {
        "a record's field changed": (False, [("hash", sc.minlog, {})]),
        "a look-up hidden from MinLog": (False, [("hash", sc.minlog, {})]),
        "a record deleted in the middle": (False, [("missing", sc.minlog, {"first": sc.minlog,
                                                                              "last": sc.minlog}),
                                                   ("chain", sc.minlog + 1, {})]),
        "the tail cut off": (True, [("checkpoint-cut", sc.cp, {"last": sc.cp - 2, **when}),
                                    ("head", sc.last, {"last": sc.cp - 2})]),
        "the chain rewritten with unkeyed SHA-256": (False, [("hash", 1, {})]),
        "the chain rewritten with another key": (False, [("hash", 1, {})]),
        "a document's bytes changed": (False, [("doc-bytes", None, {"id": doc_id})]),
        "a document's hash column changed with its bytes": (False, [("doc-sha", stored_by, {"id": doc_id})]),
        "a document moved to another patient": (False, [("doc-patient", stored_by, {"id": doc_id})]),
        "two records reordered": (False, [("hash", sc.minlog, {}), ("hash", sc.minlog + 1, {})]),
        "a forged record inserted": (False, [("hash", sc.last + 1, {})]),
        "a sequence gap": (False, [("missing", sc.last, {"first": sc.last, "last": sc.last + 2})]),
        "the head moved back": (True, [("checkpoint-cut", sc.cp, {"last": sc.cp - 2, **when})]),
        "the key swapped": (True, [("checkpoint-key", None, when)]),
        "a record duplicated": (False, [("duplicate", sc.last + 1, {"other": sc.minlog})]),
    }[kind]


TAMPERING: dict[str, Callable[[sa.Connection, Scene], None]] = {
    "a record's field changed": lambda c, sc: c.execute(
        audit_events.update().where(audit_events.c.seq == sc.minlog).values(actor="autorisation:NOBODY")),
    "a look-up hidden from MinLog": lambda c, sc: c.execute(
        audit_events.update().where(audit_events.c.seq == sc.minlog).values(minlog=False)),
    "a record deleted in the middle": lambda c, sc: c.execute(
        audit_events.delete().where(audit_events.c.seq == sc.minlog)),
    "the tail cut off": _cut,
    "the chain rewritten with unkeyed SHA-256": lambda c, sc: _rewrite(c, sc, _plain_sha256),
    "the chain rewritten with another key": lambda c, sc: _rewrite(c, sc, lambda r: audit.keyed_hash(OTHER_KEY, r)),
    "a document's bytes changed": lambda c, sc: _document(c, sc, content=MUTATED),
    "a document's hash column changed with its bytes": lambda c, sc: _document(
        c, sc, content=MUTATED, content_sha256=hashlib.sha256(MUTATED).hexdigest()),
    "a document moved to another patient": lambda c, sc: _document(c, sc, patient_cpr=sc.other_patient),
    "two records reordered": _swap,
    "a forged record inserted": _forge,
    "a sequence gap": _gap,
    "the head moved back": lambda c, sc: (_cut(c, sc), _head(c, sc.cp - 2)),
    "the key swapped": _swap_key,
    "a record duplicated": _duplicate,
}


def _scene(database_url: str, home: Path, package_cache: PackageCache) -> Scene:
    settings = Settings(home=home, database_url=database_url, package_cache=package_cache.root)
    with s.running(settings) as server:
        p, q = new_patient("Eva", "Efterspor"), new_patient("Olaf", "Omvej")
        doctor = new_doctor()
        server.relate(p, clinician_id=doctor.auth_id)
        server.shared(source(), note(p))
        server.shared(source(), note(q))
        server.search(doctor, p)
        server.search(doctor, p)
        server.search(new_doctor(), p)  # refused
        server.search(citizen(p), p)
        written = audit_cli(home, "checkpoint", "--database", database_url, "-o", home / "checkpoint.json")
        assert written.returncode == 0, written.stdout + written.stderr
        server.search(citizen(q), q)  # after the checkpoint
        server.search(doctor, p)
        rows = all_rows(server)
    checkpoint = json.loads((home / "checkpoint.json").read_text(encoding="utf-8"))
    return Scene(make_engine(database_url), home, rows, checkpoint, q.cpr)


def test_there_are_thirteen_kinds_of_tampering_and_each_has_its_expected_finding() -> None:
    """The issue's list (record field, middle deletion, tail cut, rewrite unkeyed/other key, document bytes, sha
    column, patient, reordering, forged insert, sequence gap, head moved back, key swap, duplicate) is all here."""
    assert len(TAMPERING) == 15  # 13 kinds; the rewrite in two variants, a field change also as MinLog hiding


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_audit_verify_finds_tampering_by_the_database_superuser(
        kind: str, database_url: str, tmp_path: Path, package_cache: PackageCache) -> None:
    sc = _scene(database_url, tmp_path, package_cache)
    cp_file = tmp_path / "checkpoint.json"
    try:
        intact = verify_cli(database_url, tmp_path, "--against", cp_file)
        assert intact.returncode == 0, intact.stdout + intact.stderr
        assert "intact" in intact.stdout and "checkpoint" in intact.stdout
        with attacker(sc.engine) as conn:
            TAMPERING[kind](conn, sc)
        needs_checkpoint, lines = _expected(kind, sc)
        found = verify_cli(database_url, tmp_path, *(["--against", cp_file] if needs_checkpoint else []))
        assert found.returncode == 1, found.stdout + found.stderr
        printed = found.stdout.splitlines()
        for key, seq, params in lines:
            assert audit.message(key, "en", seq=seq, **params) in printed, (key, found.stdout)
        assert "Traceback" not in found.stderr
        if kind in ("the head moved back", "the key swapped"):
            # Without a checkpoint the log is consistent in itself: this is what checkpoints are for.
            assert verify_cli(database_url, tmp_path).returncode == 0
    finally:
        sc.engine.dispose()


def test_a_checkpoint_is_not_written_for_a_tampered_log(database_url: str, tmp_path: Path,
                                                        package_cache: PackageCache) -> None:
    sc = _scene(database_url, tmp_path, package_cache)
    try:
        with attacker(sc.engine) as conn:
            TAMPERING["a record's field changed"](conn, sc)
        out = tmp_path / "second.json"
        r = audit_cli(tmp_path, "checkpoint", "--database", database_url, "-o", out, "--lang", "da")
        assert r.returncode == 1 and not out.exists()
        assert audit.message("hash", "da", seq=sc.minlog) in r.stdout.splitlines()
    finally:
        sc.engine.dispose()


def test_a_checkpoint_edited_by_hand_is_refused(database_url: str, tmp_path: Path,
                                                package_cache: PackageCache) -> None:
    sc = _scene(database_url, tmp_path, package_cache)
    sc.engine.dispose()
    forged = {**sc.checkpoint, "seq": sc.cp - 3}  # an older head, so that a cut would pass
    (tmp_path / "forged.json").write_text(json.dumps(forged), encoding="utf-8")
    r = verify_cli(database_url, tmp_path, "--against", tmp_path / "forged.json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert audit.message("checkpoint-signature", "en", time=sc.checkpoint["time"]) in r.stdout.splitlines()


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
