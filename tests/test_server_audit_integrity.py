"""The audit log proves itself (issue 9, item 4): the database refuses changes to audit records and stored documents;
every refusal is recorded whatever patient value was asked; a numeric CPR claim does not break the chain; a 406 is a
refusal, not a look-up; the audit key is the data directory's own; an old database is re-keyed once and stays
verifiable; `kroniker audit verify` says 0 / 1 / 2 in Danish and English. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.db import audit_events, audit_head, documents, make_engine, migrate
from kroniker.reference_server.store import Store
from kroniker.reference_server.tokens import Principal
from tests import server_support as s
from tests.server_support import Server, citizen, clinician, new_patient, note, source

ROOT = Path(__file__).resolve().parents[1]
KEY = b"k" * 64
SOURCE = Principal("source", sor="481751000016007", org_name="Lægerne i Kronikergården")


def _document_row(doc_id: str, content: bytes, patient: str) -> dict[str, Any]:
    when = dt.datetime(2026, 11, 25, 9, 30)
    row: dict[str, Any] = {c.name: None for c in documents.c}
    row.update(id=doc_id, master_identifier=f"urn:uuid:{doc_id}", content_sha256=hashlib.sha256(content).hexdigest(),
               content=content, content_type="application/fhir+json", standard="medcom.fhir.dk.notes#2.0.2",
               patient_cpr=patient, status="current", type_system="http://snomed.info/sct", type_code="866144008",
               author_org_sor=SOURCE.sor, created=when, docref="{}", version=1)
    return row


def _snapshot(engine: sa.Engine) -> tuple[list[Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        return ([tuple(r) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))],
                [tuple(r) for r in conn.execute(sa.select(audit_head))],
                [tuple(r) for r in conn.execute(sa.select(documents).order_by(documents.c.id))])


# -- append-only, enforced by the database itself -----------------------------------------------------------

def _refused_statements(dialect: str) -> dict[str, sa.Executable]:
    refused: dict[str, sa.Executable] = {
        "an audit record changed": audit_events.update().where(audit_events.c.seq == 1).values(actor="x"),
        "an audit record deleted": audit_events.delete().where(audit_events.c.seq == 2),
        "the whole audit log deleted": audit_events.delete(),
        "a record put in anywhere but at the head": audit_events.insert().values(
            seq=10, id="forged", recorded=dt.datetime(2026, 1, 1), action="search", outcome="0", role="admin",
            actor="admin:x", documents="[]", override=False, minlog=False, detail="{}", prev_hash="0" * 64,
            hash="1" * 64),
        "the head moved back": audit_head.update().values(seq=1),
        "the head deleted": audit_head.delete(),
        "a document's bytes changed": documents.update().values(content=b"{}"),
        "a document's hash changed": documents.update().values(content_sha256="0" * 64),
        "a document moved to another patient": documents.update().values(patient_cpr="0101010000"),
        "a document deleted": documents.delete(),
    }
    if dialect == "postgresql":
        refused["the audit log truncated"] = sa.text("TRUNCATE audit_events")
        refused["the documents truncated"] = sa.text("TRUNCATE documents CASCADE")
    return refused


def test_the_database_refuses_to_change_or_delete_audit_records_and_documents(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        store = Store(engine, KEY)
        with engine.begin() as conn:
            conn.execute(documents.insert().values(**_document_row("d1", b'{"a":1}', "1505629996")))
        for i in range(3):
            store.record(audit.AuditRecord("search", SOURCE, patient_cpr="1505629996", detail={"n": i}))
        before = _snapshot(engine)
        for what, statement in _refused_statements(engine.dialect.name).items():
            with pytest.raises(sa.exc.DBAPIError, match="kroniker: "), engine.begin() as conn:
                conn.execute(statement)
            assert _snapshot(engine) == before, what
        # What the server itself does still works: a status change, a new record.
        with engine.begin() as conn:
            conn.execute(documents.update().values(status="entered-in-error", status_reason="forkert patient"))
        store.record(audit.AuditRecord("search", SOURCE, patient_cpr="1505629996"))
        records = list(audit.iter_all(engine))
        assert [r["seq"] for r in records] == [1, 2, 3, 4]
        store.close()
    finally:
        engine.dispose()


# -- every refusal recorded, whatever was asked ------------------------------------------------------------------

def _escaped(value: str) -> str:
    """The documented rule: NUL, C0 controls but tab/LF/CR, DEL and lone surrogates as \\xNN / \\uNNNN."""
    out = []
    for ch in value:
        code = ord(ch)
        if (code < 0x20 and ch not in "\t\n\r") or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _safe(value: str) -> str:
    """The stored form: escaped, then at most 64 characters (the column's width)."""
    return _escaped(value)[:64]


PROBES = {
    "eleven digits": "01010112345",
    "5,000 characters": "9" * 5000,
    "a NUL byte": "0101\x001234",
    "a lone surrogate": "\ud800010101",
    "control characters and a surrogate, long": "\x01\x7f\udfff" * 100,
}


def _refusals_after(server: Server, seen: int) -> list[dict[str, Any]]:
    return [r for r in audit.iter_all(server.engine) if r["seq"] > seen]


# A URL cannot carry a lone surrogate (it is UTF-8 once decoded); the JSON body of /blocks can.
ROUTES_AND_PROBES = [(route, probe) for route in ("search", "block") for probe in PROBES
                     if route == "block" or not any(0xD800 <= ord(c) <= 0xDFFF for c in PROBES[probe])]


@pytest.mark.parametrize(("route", "probe"), ROUTES_AND_PROBES)
def test_a_refusal_is_recorded_whatever_the_patient_value(server: Server, route: str, probe: str) -> None:
    value = PROBES[probe]
    asker = citizen(new_patient("Pia", "Probe"))
    seen = len(list(audit.iter_all(server.engine)))
    if route == "search":
        r = server.get("/fhir/DocumentReference", asker,
                       params={"patient.identifier": f"{s.CPR_SYSTEM}|{value}", "status": "current"})
    else:
        body = json.dumps({"patient": value, "kind": "general"}).encode()  # ASCII JSON: \u escapes
        r = server.request("POST", "/blocks", asker, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 403), r.text  # a malformed CPR is refused before the access rule is asked
    [record] = _refusals_after(server, seen)
    assert (record["action"], record["outcome"], record["actor"]) == ("refused", "4", asker.actor)
    if record["patient_cpr"] is None:
        # Refused by the input checks before the body or parameter was read as a patient (NUL, lone surrogates,
        # a body that is no block): recorded all the same, with the route and status, and no patient named.
        assert r.status_code == 400 and json.loads(record["detail"])["status"] == 400
        assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []
        return
    assert record["patient_cpr"] == _safe(value)
    altered = json.loads(record["detail"]).get("altered", {}).get("patient_cpr")
    if _safe(value) == value:
        assert altered is None
    else:
        assert altered["length"] == len(value)
        assert altered["sha256"] == hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        assert altered["truncated"] == (len(_escaped(value)) > 64)
        assert altered["escaped"] == (_escaped(value) != value)
    assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []


# -- claims normalised before hashing ----------------------------------------------------------------------------

def _token(server: Server, claims: dict[str, Any]) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"iss": "kroniker", "iat": now, "exp": now + 600, **claims}, server.key, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def test_a_numeric_cpr_claim_is_the_cpr_and_the_log_stays_intact(server: Server) -> None:
    headers = _token(server, {"role": "citizen", "cpr": 1505629996})
    seen = len(list(audit.iter_all(server.engine)))
    r = server.client.get("/fhir/DocumentReference", headers=headers,
                          params={"patient.identifier": f"{s.CPR_SYSTEM}|1505629996", "status": "current"})
    assert r.status_code == 200, r.text
    assert server.client.get("/fhir/AuditEvent", headers=headers).status_code == 200
    new = _refusals_after(server, seen)
    assert [(x["action"], x["actor"], x["patient_cpr"]) for x in new] == [
        ("search", "cpr:1505629996", "1505629996"), ("audit", "cpr:1505629996", "1505629996")]
    assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []


@pytest.mark.parametrize("cpr", [[1505629996], {"v": "1505629996"}, True])
def test_a_cpr_claim_that_is_not_text_or_a_number_is_refused(server: Server, cpr: Any) -> None:
    r = server.client.get("/fhir/AuditEvent", headers=_token(server, {"role": "citizen", "cpr": cpr}))
    assert r.status_code == 401 and s.is_outcome(r)


# -- records written after content negotiation -----------------------------------------------------------------

def test_a_406_on_retrieve_is_a_refusal_and_not_a_look_up_in_minlog(server: Server) -> None:
    p = new_patient("Nina", "Negotiation")
    doctor = clinician("A77777", name="Overlæge Accept")
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))
    seen = len(list(audit.iter_all(server.engine)))
    r = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(doctor, Accept="text/html"))
    assert r.status_code == 406 and s.is_outcome(r)
    # Refused at content negotiation, before the document is looked up: nothing of it was read, so the refusal
    # names no patient (and is no look-up in anyone's MinLog).
    [record] = _refusals_after(server, seen)
    assert (record["action"], record["outcome"], record["reason"], record["minlog"], record["patient_cpr"]) == (
        "refused", "4", "not-acceptable", False, None)
    assert server.minlog(p) == []
    ok = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(doctor, Accept="*/*"))
    assert ok.status_code == 200
    assert [e["subtype"][0]["code"] for e in server.minlog(p)] == ["ITI-68"]


# -- the key ---------------------------------------------------------------------------------------------------

def test_the_audit_key_is_made_once_private_and_apart_from_the_token_key(server: Server, tmp_path: Path) -> None:
    path = server.settings.audit_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() != server.settings.key_file.read_bytes()
    assert audit.load_or_create_key(path) == path.read_bytes().strip()
    fresh = tmp_path / "home" / "audit.key"
    first = audit.load_or_create_key(fresh)
    assert len(first) == 64 and int(first, 16) >= 0
    assert audit.load_or_create_key(fresh) == first
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert [p.name for p in fresh.parent.iterdir()] == ["audit.key"]  # no temporary file left beside it


# -- an old database: re-keyed once, its old records still verified ---------------------------------------------

def _upgrade_to(engine: sa.Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "reference_server" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _old_rule(row: dict[str, Any]) -> str:
    """The hash of releases before migration 0003: plain SHA-256 over the record's JSON (docs/server.md)."""
    fields = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items() if k != "hash"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                     default=str).encode("utf-8")).hexdigest()


@contextmanager
def _old_database(url: str) -> Iterator[sa.Engine]:
    """A database as the previous release left it: three records under the old rule, one document; then
    upgraded to the newest schema."""
    engine = make_engine(url)
    _upgrade_to(engine, "0002_dpia")
    prev = audit.GENESIS
    with engine.begin() as conn:
        old_doc = _document_row("old-doc", b'{"old":1}', "1505629996")
        # columns of migration 0006 (versions) are not there yet
        conn.execute(documents.insert().values(**{k: v for k, v in old_doc.items() if k not in ("version", "updated")}))
        for seq in (1, 2, 3):
            row = {"seq": seq, "id": f"old-{seq}", "recorded": dt.datetime(2026, 1, seq, 8), "action": "search",
                   "outcome": "0", "role": "source", "actor": "sor:481751000016007", "actor_name": None,
                   "org_sor": "481751000016007", "org_name": "Lægerne", "patient_cpr": "1505629996",
                   "documents": "[]", "purpose": "TREAT", "reason": None, "override": False, "override_reason": None,
                   "minlog": False, "detail": "{}", "prev_hash": prev}
            row["hash"] = prev = _old_rule(row)
            conn.execute(audit_events.insert().values(**row))
        conn.execute(audit_head.update().values(seq=3, hash=prev))
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _superuser(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        for (name,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").all():
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    else:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")


def test_an_old_database_is_re_keyed_once_and_verifies(database_url: str) -> None:
    with _old_database(database_url) as engine:
        assert [(t.key, t.params) for t in audit.verify(engine, KEY)] == [("unsealed", {"legacy": 3})]
        store = Store(engine, KEY)
        rekey = store.seal()
        assert rekey is not None and (rekey["seq"], rekey["action"]) == (4, "rekey")
        assert store.seal() is None  # once
        store.record(audit.AuditRecord("search", SOURCE, patient_cpr="1505629996"))
        assert audit.verify(engine, KEY) == []
        assert audit.verify(engine, b"x" * 64) != []  # the records after the re-key are keyed
        store.close()


OLD_TAMPERING: dict[str, tuple[Callable[[sa.Connection], None], tuple[str, int | None]]] = {
    "an old record changed": (lambda c: c.execute(
        audit_events.update().where(audit_events.c.seq == 2).values(actor="sor:NOBODY")), ("legacy-hash", 2)),
    "an old document moved to another patient": (lambda c: c.execute(
        documents.update().where(documents.c.id == "old-doc").values(patient_cpr="0101010000")),
        ("legacy-documents", 4)),
    "the boundary moved up to pass keyed records off as old": (lambda c: c.execute(
        audit_head.update().values(keyed_from=5)), ("legacy-hash", 4)),
}


@pytest.mark.parametrize("tampering", list(OLD_TAMPERING))
def test_tampering_with_an_old_database_after_its_upgrade_is_found(database_url: str, tampering: str) -> None:
    how, (key, seq) = OLD_TAMPERING[tampering]
    with _old_database(database_url) as engine:
        store = Store(engine, KEY)
        store.seal()
        store.record(audit.AuditRecord("search", SOURCE, patient_cpr="1505629996"))
        store.close()
        with engine.begin() as conn:
            _superuser(conn)
            how(conn)
        assert (key, seq) in [(t.key, t.seq) for t in audit.verify(engine, KEY)]


# -- `kroniker audit verify`: 0 intact, 1 tampered, 2 cannot be checked; Danish and English ----------------------

def _cli(home: Path, *args: str | Path, lang: str = "en") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRONIKER_HOME": str(home)}
    for name in ("KRONIKER_DATABASE", "KRONIKER_LANG"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "kroniker", "audit", *map(str, args), "--lang", lang],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


@pytest.mark.parametrize("lang", ["en", "da"])
def test_audit_verify_exit_codes_and_messages(database_url: str, tmp_path: Path, lang: str) -> None:
    home = tmp_path / "home"
    # No key: cannot be checked (and verify never makes one).
    r = _cli(home, "verify", "--database", database_url, lang=lang)
    assert r.returncode == 2, r.stdout + r.stderr
    assert audit.message("no-key", lang, path=str(home / "audit.key")) in r.stderr
    assert not (home / "audit.key").exists()
    # A key, but no audit log in the database: cannot be checked.
    audit.load_or_create_key(home / "audit.key")
    r = _cli(home, "verify", "--database", database_url, lang=lang)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert audit.message("database", lang, detail="").split(":")[0] in r.stderr
    # An intact log.
    engine = make_engine(database_url)
    try:
        migrate(engine)
        Store(engine, audit.load_key(home / "audit.key")).record(audit.AuditRecord("search", SOURCE))
        r = _cli(home, "verify", "--database", database_url, lang=lang)
        assert r.returncode == 0, r.stdout + r.stderr
        assert audit.message("intact", lang, records=1, documents=0) in r.stdout
        # A checkpoint that is not one: cannot be checked.
        bad = tmp_path / "bad.json"
        bad.write_text("{", encoding="utf-8")
        r = _cli(home, "verify", "--database", database_url, "--against", bad, lang=lang)
        assert r.returncode == 2
        assert audit.message("checkpoint-unreadable", lang, path=str(bad), detail="not JSON") in r.stderr
        # Tampered.
        with engine.begin() as conn:
            _superuser(conn)
            conn.execute(audit_events.update().values(reason="x"))
        r = _cli(home, "verify", "--database", database_url, lang=lang)
        assert r.returncode == 1
        assert r.stdout.splitlines() == [audit.message("hash", lang, seq=1)]
        assert audit.message("tampered", lang, count=1) in r.stderr
    finally:
        engine.dispose()


def test_a_document_stored_before_versions_is_version_1_and_its_next_status_version_2(database_url: str) -> None:
    with _old_database(database_url) as engine:
        store = Store(engine, KEY)
        [v1] = store.versions("old-doc")
        assert (v1.row["version"], v1.row["status"]) == (1, "current")
        assert v1.docref("http://x")["meta"]["versionId"] == "1"
        store.set_status("old-doc", "entered-in-error", "test", audit.AuditRecord("status", SOURCE))
        assert [(v.row["version"], v.row["status"]) for v in store.versions("old-doc")] == [
            (2, "entered-in-error"), (1, "current")]
        store.close()
