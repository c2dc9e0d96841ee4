"""The audit log: every request, allowed or not, appended in the same transaction as what it records, each
record carrying a keyed hash (HMAC-SHA256 with a key of the server's data directory) that chains it to the one
before. A submission's record carries the stored document's SHA-256 and patient, so the chain covers documents too.
`kroniker audit verify` recomputes it all; `kroniker audit checkpoint` exports a signed head that later proves the
log was neither cut short nor rewritten. The database refuses UPDATE and DELETE (migration 0003's triggers).

The citizen's MinLog is a view of it with DDS's rules: professionals' look-ups only, værdispring shown as
such, nothing for a request a general block answered with nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kroniker.reference_server.db import audit_events, audit_head, compiled, documents, reading
from kroniker.reference_server.tokens import Principal
from kroniker.validators.identifiers import CPR_SYSTEM, SOR_SYSTEM

GENESIS = "0" * 64
KEYED = b"kroniker-audit/2\n"  # what a keyed hash is of: this tag, then the record's canonical JSON
CHECKPOINT_KIND = "kroniker-audit-checkpoint"
CHECKPOINT_TAG = b"kroniker-audit-checkpoint/1\n"

# IHE transactions and FHIR AuditEvent codes per action.
ACTIONS: dict[str, tuple[str, str, str]] = {  # action → (IHE code, display, FHIR action C/R/U/D/E)
    "submit": ("ITI-65", "Provide Document Bundle", "C"),
    "replace": ("ITI-65", "Provide Document Bundle (replace)", "C"),
    # documents added to a kept MHD Folder (ITI-65 with PUT List/{id}): the Folder's new version
    "update-List": ("ITI-65", "Provide Document Bundle (update Folder)", "U"),
    "search": ("ITI-67", "Find Document References", "E"),
    "read-metadata": ("ITI-67", "Find Document References (read)", "R"),
    # A SubmissionSet read by id (GET /fhir/List/{id}): MHD's List transaction is ITI-66, Find Document Lists, as
    # a DocumentReference read is ITI-67's.
    "read-List": ("ITI-66", "Find Document Lists (read)", "R"),
    "retrieve": ("ITI-68", "Retrieve Document", "R"),
    "status": ("ITI-57", "Update Document Set", "U"),
    "audit": ("ITI-81", "Retrieve ATNA Audit Event", "E"),
    "block": ("", "Min Spærring: block", "C"),
    "unblock": ("", "Min Spærring: lift block", "U"),
    "blocks": ("", "Min Spærring: list blocks", "R"),
    "relation": ("", "Treatment relation (BRS)", "C"),
    "refused": ("", "Refused request", "E"),
    "rekey": ("", "Audit chain re-keyed", "E"),
    "proxy": ("", "Proxy (custody, fuldmagt): register", "C"),
    "proxy-end": ("", "Proxy (custody, fuldmagt): end", "U"),
    "proxies": ("", "Proxy (custody, fuldmagt): list", "R"),
}
# A citizen acting for another (policy.acting_for): the purpose of use is the request of the patient's appointed
# representative (HL7 v3 ActReason PWATRNY); the kind, as MinLog names it.
PROXY_PURPOSE = "PWATRNY"
PROXY_NAMES = {"custody": "forældremyndighed", "fuldmagt": "fuldmagt"}
OUTCOMES = {"success": "0", "minor": "4", "serious": "8", "major": "12"}


@dataclass
class AuditRecord:
    action: str
    principal: Principal | None
    outcome: str = "0"
    patient_cpr: Any = None  # what was asked, whatever it was: stored in a safe, bounded form
    documents: list[str] = field(default_factory=list)
    purpose: str | None = None
    reason: str | None = None
    override: str | None = None
    minlog: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    content_sha256: str | None = None  # a submission's: the stored bytes' SHA-256
    on_behalf: str | None = None  # a citizen acting for the patient as a proxy: custody | fuldmagt


# -- the key -----------------------------------------------------------------------------------------------

class Unreadable(Exception):
    """The log cannot be checked at all: no key, no database, no readable checkpoint (exit 2, not 'tampered')."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def load_or_create_key(path: Path) -> bytes:
    """The audit key; made on first start (32 random bytes as hex, mode 0600), never replaced.

    Written beside and then linked into place, so two processes starting at once both end up with the one key
    that won, and no one ever reads a half-written file.
    """
    if path.exists():
        return load_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass  # another process made it first: its key is the key
    finally:
        temp.unlink()
    return load_key(path)


def load_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise Unreadable("no-key", path=str(path)) from None
    except OSError as exc:
        raise Unreadable("key-unreadable", path=str(path), detail=exc.strerror or str(exc)) from None
    if len(key) < 32:
        raise Unreadable("key-unreadable", path=str(path), detail="too short")
    return key


def key_id(key: bytes) -> str:
    """Names a key without revealing it (in checkpoints: a swapped key is told apart from a forged signature)."""
    return hmac.new(key, b"kroniker-audit-key-id", hashlib.sha256).hexdigest()[:16]


# -- what is stored: safe, bounded, normalised --------------------------------------------------------------

# NUL cannot be stored by PostgreSQL, a lone surrogate cannot be encoded to UTF-8, other control characters are
# kept out of what people read: each is written as its escape, and the record says so.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
TEXT_LIMIT = 4000  # characters of a free-text field (a reason)
DETAIL_LIMIT = 64 * 1024  # characters of the detail JSON; beyond, its start, length and SHA-256
_LIMITS: dict[str, int] = {c.name: (c.type.length or TEXT_LIMIT) for c in audit_events.c
                           if isinstance(c.type, sa.String) and c.name not in ("documents", "detail")}


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _fingerprint(text: str) -> dict[str, Any]:
    return {"length": len(text), "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


def safe_text(value: Any, limit: int) -> tuple[str, dict[str, Any] | None]:
    """The value as text that every database stores and every reader can show, and how it was altered (None: not
    at all; else whether it was escaped or truncated, and the original's length and SHA-256)."""
    text = value if isinstance(value, str) else str(value)  # a number from a token is its digits
    safe = _UNSAFE.sub(_escape, text)
    truncated = len(safe) > limit
    if truncated:
        safe = safe[:limit]
    if safe == text:
        return safe, None
    return safe, {**_fingerprint(text), "escaped": bool(_UNSAFE.search(text)), "truncated": truncated}


def _detail_json(detail: dict[str, Any]) -> str:
    # ASCII JSON: NUL and lone surrogates become \u escapes, so any value is stored as it came.
    text = json.dumps(detail, sort_keys=True, default=str)
    if len(text) <= DETAIL_LIMIT:
        return text
    return json.dumps({"truncated": _fingerprint(text), "start": text[:4096]}, sort_keys=True)


def _row(rec: AuditRecord, seq: int, prev_hash: str, now: dt.datetime | None) -> dict[str, Any]:
    p = rec.principal
    row: dict[str, Any] = {
        "seq": seq,
        "id": str(uuid.uuid4()),
        "recorded": (now or dt.datetime.now(dt.UTC).replace(tzinfo=None)).replace(microsecond=0),
        "action": rec.action,
        "outcome": rec.outcome,
        "role": p.role if p else "anonymous",
        "actor": p.actor if p else "anonymous",
        "actor_name": p.name if p else None,
        "org_sor": p.sor if p else None,
        "org_name": p.org_name if p else None,
        "patient_cpr": rec.patient_cpr,
        "documents": json.dumps([str(d) for d in rec.documents]),
        "purpose": rec.purpose,
        "reason": rec.reason,
        "override": rec.override is not None,
        "override_reason": rec.override,
        "minlog": bool(rec.minlog),
        "prev_hash": prev_hash,
        "content_sha256": rec.content_sha256,
    }
    detail = dict(rec.detail)
    if rec.on_behalf is not None:
        # Who acted for whom: the actor is the holder, the patient the subject (the record's own columns).
        detail["on_behalf"] = rec.on_behalf
        row["purpose"] = PROXY_PURPOSE
    altered: dict[str, Any] = {}
    for name, limit in _LIMITS.items():
        if row.get(name) is not None:
            row[name], how = safe_text(row[name], limit)
            if how is not None:
                altered[name] = how
    if altered:
        detail["altered"] = altered  # the stored value is not all that was asked: its length and SHA-256 are here
    row["detail"] = _detail_json(detail)
    return row


# -- hashing ---------------------------------------------------------------------------------------------------

def _canonical(row: dict[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items() if k != "hash"}


# The columns the unkeyed rule hashed (before migration 0003); later columns are not part of it.
LEGACY_COLUMNS = ("seq", "id", "recorded", "action", "outcome", "role", "actor", "actor_name", "org_sor", "org_name",
                  "patient_cpr", "documents", "purpose", "reason", "override", "override_reason", "minlog", "detail",
                  "prev_hash")


def legacy_hash(row: dict[str, Any]) -> str:
    """The hash of a record written before the chain was keyed (plain SHA-256 of its fields)."""
    return hashlib.sha256(_canonical(_hashed_fields({k: row[k] for k in LEGACY_COLUMNS}))).hexdigest()


def keyed_hash(key: bytes, row: dict[str, Any]) -> str:
    """HMAC-SHA256 over every field but the hash itself: without the key no one makes a hash that verifies."""
    fields = _hashed_fields({c.name: row.get(c.name) for c in audit_events.c})
    message = KEYED + json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# -- appending ----------------------------------------------------------------------------------------------

_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_HEAD_UPDATE = audit_head.update().where(audit_head.c.id == 1).values(
    seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
_INSERT = audit_events.insert()


def append(conn: Connection, rec: AuditRecord, key: bytes, now: dt.datetime | None = None) -> dict[str, Any]:
    """Append one record inside the caller's transaction; the head row serialises writers."""
    head = compiled(_HEAD, conn).first(conn, {})
    if head is None:
        raise RuntimeError("the audit log has no head row: the database was not migrated")
    head_seq, head_hash = head
    row = _row(rec, head_seq + 1, head_hash, now)
    row["hash"] = keyed_hash(key, row)
    compiled(_INSERT, conn).execute(conn, row)
    compiled(_HEAD_UPDATE, conn).execute(conn, {"new_seq": row["seq"], "new_hash": row["hash"]})
    return row


def _documents_digest(items: list[tuple[str, str, str]]) -> str:
    """One SHA-256 over (id, content SHA-256, patient) of documents, in id order."""
    h = hashlib.sha256()
    for doc_id, sha, patient in sorted(items):
        h.update(f"{doc_id}\t{sha}\t{patient}\n".encode())
    return h.hexdigest()


def seal(conn: Connection, key: bytes) -> dict[str, Any] | None:
    """Re-key a chain that was hashed unkeyed (a database from before migration 0003), once: a keyed "rekey"
    record that chains to the old head and holds a digest of every document stored until then. Nothing to do
    (None) for a database that was keyed from its start or was re-keyed already."""
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.keyed_from)
                        .where(audit_head.c.id == 1).with_for_update()).one()
    if head.keyed_from == 0 or head.seq != head.keyed_from:
        return None
    docs = [(r.id, r.content_sha256, r.patient_cpr) for r in conn.execute(
        sa.select(documents.c.id, documents.c.content_sha256, documents.c.patient_cpr))]
    rec = AuditRecord("rekey", None, reason="chain re-keyed", detail={
        "legacy_records": head.keyed_from, "documents": len(docs), "documents_digest": _documents_digest(docs)})
    return append(conn, rec, key)


# -- verifying ------------------------------------------------------------------------------------------------

@dataclass
class Tamper:
    """One thing `verify` found wrong: a message key of MESSAGES and its values (seq: the record it is about)."""

    key: str
    seq: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def problem(self) -> str:
        return message(self.key, "en", seq=self.seq, **self.params)

    def text(self, lang: str) -> str:
        return message(self.key, lang, seq=self.seq, **self.params)


@dataclass
class Checkpoint:
    seq: int
    hash: str
    time: str
    key_id: str
    signature: str


def make_checkpoint(engine: Engine, key: bytes, now: dt.datetime | None = None) -> dict[str, Any]:
    """The log's head, signed with the audit key: keep it somewhere the database's administrators cannot write."""
    with reading(engine) as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    body = {"kind": CHECKPOINT_KIND, "seq": head.seq, "hash": head.hash,
            "time": when.isoformat().replace("+00:00", "Z"), "key_id": key_id(key)}
    return {**body, "signature": _checkpoint_signature(key, body)}


def _checkpoint_signature(key: bytes, body: dict[str, Any]) -> str:
    fields = {k: body[k] for k in ("kind", "seq", "hash", "time", "key_id")}
    return hmac.new(key, CHECKPOINT_TAG + _canonical(fields), hashlib.sha256).hexdigest()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file as `make_checkpoint` wrote it (Unreadable when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Unreadable("checkpoint-unreadable", path=str(path), detail=exc.strerror or str(exc)) from None
    except (ValueError, UnicodeDecodeError):
        raise Unreadable("checkpoint-unreadable", path=str(path), detail="not JSON") from None
    ok = (isinstance(data, dict) and data.get("kind") == CHECKPOINT_KIND and type(data.get("seq")) is int
          and all(isinstance(data.get(k), str) for k in ("hash", "time", "key_id", "signature")))
    if not ok:
        raise Unreadable("checkpoint-unreadable", path=str(path), detail="not a kroniker audit checkpoint")
    return data


@dataclass
class _Walk:
    """What one pass over the records collects for the checks that follow it."""

    keyed_from: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    records: int = 0
    rekey: dict[str, Any] | None = None
    stored_by: dict[str, list[tuple[int, str, str | None]]] = field(default_factory=dict)  # doc → (seq, sha, patient)
    hash_at: dict[int, str] = field(default_factory=dict)  # the hash at the checkpoint's seq


def verify(engine: Engine, key: bytes, checkpoint: dict[str, Any] | None = None) -> list[Tamper]:
    """Recompute the chain and every stored document against it; with a checkpoint, prove the log still reaches
    that head with that hash. Raises Unreadable when the database cannot be read."""
    problems: list[Tamper] = []
    try:
        with reading(engine) as conn:
            head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash, audit_head.c.keyed_from)
                                .where(audit_head.c.id == 1)).one_or_none()
            if head is None:
                return [Tamper("no-head")]
            want = checkpoint["seq"] if checkpoint else None
            walk = _walk_records(conn, key, head.keyed_from, want, problems)
            _check_head(head, walk, problems)
            _check_documents(conn, walk, problems)
    except sa.exc.SQLAlchemyError as exc:
        raise Unreadable("database", detail=str(getattr(exc, "orig", None) or exc).splitlines()[0]
                         ) from None
    if checkpoint is not None:
        _check_checkpoint(checkpoint, key, walk, problems)
    return problems


def _walk_records(conn: Connection, key: bytes, keyed_from: int, want: int | None,
                  problems: list[Tamper]) -> _Walk:
    walk = _Walk(keyed_from)
    seen: dict[str, int] = {}
    expected = 1
    query = sa.select(audit_events).order_by(audit_events.c.seq)
    for row in conn.execution_options(yield_per=1000).execute(query).mappings():
        r = dict(row)
        seq = r["seq"]
        if seq != expected:
            problems.append(Tamper("missing", expected, {"first": expected, "last": seq - 1}))
        if r["prev_hash"] != walk.last_hash:
            problems.append(Tamper("chain", seq))
        if seq <= keyed_from:
            if legacy_hash(r) != r["hash"]:
                problems.append(Tamper("legacy-hash", seq))
        elif not hmac.compare_digest(keyed_hash(key, r), r["hash"]):
            problems.append(Tamper("hash", seq))
        if keyed_from and seq == keyed_from + 1:
            if r["action"] != "rekey":
                problems.append(Tamper("not-rekey", seq, {"legacy": keyed_from}))
            else:
                walk.rekey = r
        if r["hash"] in seen:
            problems.append(Tamper("duplicate", seq, {"other": seen[r["hash"]]}))
        seen[r["hash"]] = seq
        if r["content_sha256"] and seq > keyed_from:
            named = json.loads(r["documents"] or "[]")
            if named:
                walk.stored_by.setdefault(named[0], []).append((seq, r["content_sha256"], r["patient_cpr"]))
        if seq == want:
            walk.hash_at[seq] = r["hash"]
        walk.last_seq, walk.last_hash, walk.records = seq, r["hash"], walk.records + 1
        expected = seq + 1
    if keyed_from and walk.last_seq <= keyed_from:
        problems.append(Tamper("unsealed", None, {"legacy": keyed_from}))
    return walk


def _check_head(head: Any, walk: _Walk, problems: list[Tamper]) -> None:
    if head.seq != walk.last_seq or head.hash != walk.last_hash:
        problems.append(Tamper("head", head.seq, {"last": walk.last_seq}))


def _check_documents(conn: Connection, walk: _Walk, problems: list[Tamper]) -> None:
    """Each stored document: its bytes hash to its content_sha256, and both (and its patient) are what the record
    that stored it holds; documents from before the chain was keyed match the re-key record's digest."""
    legacy: list[tuple[str, str, str]] = []
    query = sa.select(documents.c.id, documents.c.content_sha256, documents.c.patient_cpr, documents.c.content)
    for d in conn.execution_options(yield_per=200).execute(query):
        actual = hashlib.sha256(d.content).hexdigest()
        if actual != d.content_sha256:
            problems.append(Tamper("doc-bytes", None, {"id": d.id}))
        records = walk.stored_by.pop(d.id, None)
        if records is None:
            legacy.append((d.id, d.content_sha256, d.patient_cpr))
            continue
        for seq, sha, patient in records:
            if sha != d.content_sha256 or sha != actual:
                problems.append(Tamper("doc-sha", seq, {"id": d.id}))
            if patient != d.patient_cpr:
                problems.append(Tamper("doc-patient", seq, {"id": d.id}))
    for doc_id, records in walk.stored_by.items():
        problems.append(Tamper("doc-missing", records[0][0], {"id": doc_id}))
    if walk.rekey is None:
        if not walk.keyed_from:  # else: "unsealed" said it already; documents from before cannot be checked
            problems += [Tamper("doc-unrecorded", None, {"id": doc_id}) for doc_id, _, _ in legacy]
        return
    detail = json.loads(walk.rekey["detail"] or "{}")
    if detail.get("documents_digest") != _documents_digest(legacy) or detail.get("documents") != len(legacy):
        problems.append(Tamper("legacy-documents", walk.rekey["seq"]))


def _check_checkpoint(cp: dict[str, Any], key: bytes, walk: _Walk, problems: list[Tamper]) -> None:
    if not hmac.compare_digest(_checkpoint_signature(key, cp), cp["signature"]):
        swapped = cp["key_id"] != key_id(key)
        problems.append(Tamper("checkpoint-key" if swapped else "checkpoint-signature", None, {"time": cp["time"]}))
        return
    seq = cp["seq"]
    if seq == 0:
        return
    if walk.last_seq < seq and seq not in walk.hash_at:
        problems.append(Tamper("checkpoint-cut", seq, {"last": walk.last_seq, "time": cp["time"]}))
    elif walk.hash_at.get(seq) != cp["hash"]:
        problems.append(Tamper("checkpoint-hash", seq, {"time": cp["time"]}))


# -- messages (Danish and English) ----------------------------------------------------------------------------

MESSAGES: dict[str, dict[str, str]] = {
    "intact": {
        "en": "the audit log is intact: {records} records chain to one another under this data directory's key, "
              "and {documents} stored documents match the records that stored them",
        "da": "auditloggen er intakt: {records} poster kæder sammen under datamappens nøgle, "
              "og {documents} gemte dokumenter svarer til de poster, der gemte dem"},
    "intact-checkpoint": {
        "en": "the log still reaches the checkpoint of {time} (record {seq}) with the same hash",
        "da": "loggen når stadig checkpointet fra {time} (post {seq}) med samme hash"},
    "tampered": {
        "en": "the audit log has been tampered with: {count} problems",
        "da": "der er pillet ved auditloggen: {count} problemer"},
    "missing": {"en": "record {seq}: records {first}..{last} are missing",
                "da": "post {seq}: posterne {first}..{last} mangler"},
    "chain": {"en": "record {seq}: does not chain to the record before it",
              "da": "post {seq}: kæder ikke til posten før den"},
    "hash": {"en": "record {seq}: its content does not match its keyed hash (changed, forged, or hashed without "
                   "this data directory's key)",
             "da": "post {seq}: indholdet passer ikke til dens nøglede hash (ændret, forfalsket eller hashet uden "
                   "datamappens nøgle)"},
    "legacy-hash": {"en": "record {seq}: its content does not match its hash (changed)",
                    "da": "post {seq}: indholdet passer ikke til dens hash (ændret)"},
    "duplicate": {"en": "record {seq}: repeats record {other}", "da": "post {seq}: gentager post {other}"},
    "not-rekey": {"en": "record {seq}: the records up to {legacy} are unkeyed, but this one is not the re-key record "
                        "that must follow them",
                  "da": "post {seq}: posterne til og med {legacy} er uden nøgle, men denne er ikke den "
                        "omnøglingspost, der skal følge dem"},
    "unsealed": {"en": "records 1..{legacy} carry unkeyed hashes only and no keyed record follows them (start "
                       "`kroniker serve` once after an upgrade; otherwise the chain was rewritten)",
                 "da": "posterne 1..{legacy} har kun hashes uden nøgle, og ingen nøglet post følger dem (start "
                       "`kroniker serve` én gang efter en opgradering; ellers er kæden skrevet om)"},
    "no-head": {"en": "the audit log has no head row", "da": "auditloggen har ingen hovedpost"},
    "head": {"en": "record {seq}: the head names record {seq}, but the log ends at record {last} with another hash "
                   "(records removed at the end, or the head moved)",
             "da": "post {seq}: hovedet peger på post {seq}, men loggen slutter ved post {last} med en anden hash "
                   "(poster fjernet i enden, eller hovedet flyttet)"},
    "doc-bytes": {"en": "document {id}: its bytes do not match its content_sha256 (changed)",
                  "da": "dokument {id}: dets bytes passer ikke til dets content_sha256 (ændret)"},
    "doc-sha": {"en": "record {seq}: document {id} does not have the SHA-256 this submission record holds",
                "da": "post {seq}: dokument {id} har ikke den SHA-256, som denne indsendelsespost har"},
    "doc-patient": {"en": "record {seq}: document {id} is not stored under the patient this submission record holds",
                    "da": "post {seq}: dokument {id} er ikke gemt under den patient, som denne indsendelsespost har"},
    "doc-missing": {"en": "record {seq}: document {id}, stored by this record, is gone",
                    "da": "post {seq}: dokument {id}, som denne post gemte, er væk"},
    "doc-unrecorded": {"en": "document {id}: no record stored it (put in the database directly)",
                       "da": "dokument {id}: ingen post gemte det (sat direkte i databasen)"},
    "legacy-documents": {"en": "record {seq}: the documents stored before the chain was keyed are not the ones this "
                               "re-key record holds",
                         "da": "post {seq}: dokumenterne fra før kæden fik nøgle er ikke dem, denne omnøglingspost "
                               "har"},
    "checkpoint-signature": {"en": "the checkpoint of {time} is not signed with this data directory's key "
                                   "(the checkpoint was altered)",
                             "da": "checkpointet fra {time} er ikke signeret med datamappens nøgle "
                                   "(checkpointet er ændret)"},
    "checkpoint-key": {"en": "the checkpoint of {time} was signed with another audit key: the key of this data "
                             "directory was swapped",
                       "da": "checkpointet fra {time} er signeret med en anden auditnøgle: datamappens nøgle er "
                             "skiftet ud"},
    "checkpoint-cut": {"en": "record {seq}: the checkpoint of {time} reached record {seq}, the log now ends at "
                             "record {last} (records cut off)",
                       "da": "post {seq}: checkpointet fra {time} nåede post {seq}, loggen slutter nu ved post "
                             "{last} (poster skåret af)"},
    "checkpoint-hash": {"en": "record {seq}: not the record the checkpoint of {time} signed (the log was rewritten)",
                        "da": "post {seq}: ikke den post, checkpointet fra {time} signerede (loggen er skrevet om)"},
    "checkpoint-written": {"en": "checkpoint of record {seq} written to {path}",
                           "da": "checkpoint af post {seq} skrevet til {path}"},
    "no-key": {"en": "cannot check the audit log: no audit key at {path} (the server makes it on first start)",
               "da": "auditloggen kan ikke kontrolleres: ingen auditnøgle i {path} (serveren laver den ved første "
                     "start)"},
    "key-unreadable": {"en": "cannot read the audit key {path}: {detail}",
                       "da": "auditnøglen {path} kan ikke læses: {detail}"},
    "checkpoint-unreadable": {"en": "cannot read the checkpoint {path}: {detail}",
                              "da": "checkpointet {path} kan ikke læses: {detail}"},
    "database": {"en": "cannot read the audit log from the database: {detail}",
                 "da": "auditloggen kan ikke læses fra databasen: {detail}"},
}


def message(key: str, lang: str, **params: Any) -> str:
    template = MESSAGES[key]["da" if lang == "da" else "en"]
    return template.format(**{k: ("-" if v is None else v) for k, v in params.items()})


# -- FHIR AuditEvent and MinLog ------------------------------------------------------------------------

AGENT_SYSTEMS = {"citizen": CPR_SYSTEM, "clinician": "urn:kroniker:autorisation", "source": SOR_SYSTEM}


def as_audit_event(row: dict[str, Any], *, for_citizen: bool = False) -> dict[str, Any]:
    ihe, display, action = ACTIONS.get(row["action"], ("", row["action"], "E"))
    actor = row["actor"]
    value = actor.partition(":")[2]
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "urn:kroniker:role", "code": row["role"]}]},
        "who": {"identifier": {"system": AGENT_SYSTEMS.get(row["role"], "urn:kroniker:actor"), "value": value},
                **({"display": row["actor_name"]} if row.get("actor_name") else {})},
        "requestor": True,
    }
    detail = json.loads(row["detail"] or "{}")
    kind = detail.get("on_behalf") if isinstance(detail, dict) else None
    if kind in PROXY_NAMES:
        # The subject's MinLog says who looked and for whom: "<holder> på vegne af <subject>" (§2.5: access as
        # parent, guardian or attorney is shown).
        agent["who"]["display"] = f"{row.get('actor_name') or value} på vegne af {row.get('patient_cpr') or '-'}"
        agent["role"] = [{"coding": [{"system": "urn:kroniker:proxy", "code": kind, "display": PROXY_NAMES[kind]}],
                          "text": PROXY_NAMES[kind]}]
    if row.get("org_sor"):
        agent["location"] = {"identifier": {"system": SOR_SYSTEM, "value": row["org_sor"]},
                             **({"display": row["org_name"]} if row.get("org_name") else {})}
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": row["id"],
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110112", "display": "Query"}
        if action == "E" else {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "urn:ihe:event-type-code", "code": ihe, "display": display}] if ihe else
        [{"system": "urn:kroniker:action", "code": row["action"], "display": display}],
        "action": action,
        "recorded": _instant(row["recorded"]),
        "outcome": row["outcome"],
        "agent": [agent],
        "source": {"observer": {"display": "kroniker reference server"}},
        "entity": [],
    }
    if row.get("reason"):
        event["outcomeDesc"] = row["reason"]
    purposes: list[dict[str, Any]] = []
    if row.get("purpose"):
        purposes.append({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                     "code": row["purpose"]}]})
    if row.get("override"):
        purposes.append({"coding": [{"system": "urn:kroniker:vaerdispring", "code": row["override_reason"],
                                     "display": "værdispring"}], "text": "værdispring"})
    if purposes:
        event["purposeOfEvent"] = purposes
    if row.get("patient_cpr"):
        event["entity"].append({"what": {"identifier": {"system": CPR_SYSTEM,
                                                        "value": row["patient_cpr"]}},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "1", "display": "Person"}})
    for doc in json.loads(row["documents"] or "[]"):
        event["entity"].append({"what": {"reference": f"DocumentReference/{doc}"},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "2", "display": "System Object"}})
    if not for_citizen:
        event["extension"] = [{"url": "urn:kroniker:audit-chain", "valueString": f"{row['seq']}:{row['hash']}"}]
        if detail:
            event["entity"].append({"what": {"display": "request"}, "detail": [
                {"type": k, "valueString": json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}
                for k, v in sorted(detail.items())]})
    if not event["entity"]:
        del event["entity"]
    return event


def _instant(t: dt.datetime) -> str:
    return t.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def rows(engine: Engine, *, patient_cpr: str | None, minlog_only: bool, limit: int, offset: int,
         newest_first: bool = True) -> tuple[list[dict[str, Any]], int]:
    where = []
    if patient_cpr is not None:
        where.append(audit_events.c.patient_cpr == patient_cpr)
    if minlog_only:
        where.append(audit_events.c.minlog.is_(True))
    q = sa.select(audit_events).where(*where).order_by(
        audit_events.c.seq.desc() if newest_first else audit_events.c.seq).limit(limit).offset(offset)
    count = sa.select(sa.func.count()).select_from(audit_events).where(*where)
    with reading(engine) as conn:
        found = [dict(r) for r in conn.execute(q).mappings()]
        total = conn.execute(count).scalar_one()
    return found, total


def iter_all(engine: Engine) -> Iterator[dict[str, Any]]:
    with reading(engine) as conn:
        for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings():
            yield dict(r)
