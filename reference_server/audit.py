"""The audit log: every request, allowed or not, appended in the same transaction as what it records, each
record carrying a hash that chains it to the one before (`kroniker audit verify` finds any tampering).

The citizen's MinLog is a view of it with DDS's rules: professionals' look-ups only, værdispring shown as
such, nothing for a request a general block answered with nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kroniker.reference_server.db import audit_events, audit_head, compiled, reading
from kroniker.reference_server.tokens import Principal

GENESIS = "0" * 64

# IHE transactions and FHIR AuditEvent codes per action.
ACTIONS: dict[str, tuple[str, str, str]] = {  # action → (IHE code, display, FHIR action C/R/U/D/E)
    "submit": ("ITI-65", "Provide Document Bundle", "C"),
    "replace": ("ITI-65", "Provide Document Bundle (replace)", "C"),
    "search": ("ITI-67", "Find Document References", "E"),
    "read-metadata": ("ITI-67", "Find Document References (read)", "R"),
    "retrieve": ("ITI-68", "Retrieve Document", "R"),
    "status": ("ITI-57", "Update Document Set", "U"),
    "audit": ("ITI-81", "Retrieve ATNA Audit Event", "E"),
    "block": ("", "Min Spærring: block", "C"),
    "unblock": ("", "Min Spærring: lift block", "U"),
    "blocks": ("", "Min Spærring: list blocks", "R"),
    "relation": ("", "Treatment relation (BRS)", "C"),
    "refused": ("", "Refused request", "E"),
}
OUTCOMES = {"success": "0", "minor": "4", "serious": "8", "major": "12"}


@dataclass
class AuditRecord:
    action: str
    principal: Principal | None
    outcome: str = "0"
    patient_cpr: str | None = None
    documents: list[str] = field(default_factory=list)
    purpose: str | None = None
    reason: str | None = None
    override: str | None = None
    minlog: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


def _canonical(row: dict[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items() if k != "hash"}


_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_HEAD_UPDATE = audit_head.update().where(audit_head.c.id == 1).values(
    seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
_INSERT = audit_events.insert()


def append(conn: Connection, rec: AuditRecord, now: dt.datetime | None = None) -> dict[str, Any]:
    """Append one record inside the caller's transaction; the head row serialises writers."""
    head = compiled(_HEAD, conn).first(conn, {})
    if head is None:
        raise RuntimeError("the audit log has no head row: the database was not migrated")
    head_seq, head_hash = head
    p = rec.principal
    row: dict[str, Any] = {
        "seq": head_seq + 1,
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
        "documents": json.dumps(rec.documents),
        "purpose": rec.purpose,
        "reason": rec.reason,
        "override": rec.override is not None,
        "override_reason": rec.override,
        "minlog": rec.minlog,
        "detail": json.dumps(rec.detail, sort_keys=True, default=str),
        "prev_hash": head_hash,
    }
    row["hash"] = hashlib.sha256(_canonical(_hashed_fields(row))).hexdigest()
    compiled(_INSERT, conn).execute(conn, row)
    compiled(_HEAD_UPDATE, conn).execute(conn, {"new_seq": row["seq"], "new_hash": row["hash"]})
    return row


@dataclass
class Tamper:
    seq: int
    problem: str


def verify(engine: Engine) -> list[Tamper]:
    """Recompute the chain: a changed, removed or inserted record, or a moved head, is reported."""
    problems: list[Tamper] = []
    prev = GENESIS
    expected_seq = 1
    with reading(engine) as conn:
        for row in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings():
            r = dict(row)
            if r["seq"] != expected_seq:
                problems.append(Tamper(expected_seq, f"records {expected_seq}..{r['seq'] - 1} are missing"))
            if r["prev_hash"] != prev:
                problems.append(Tamper(r["seq"], "does not chain to the record before it"))
            if hashlib.sha256(_canonical(_hashed_fields(r))).hexdigest() != r["hash"]:
                problems.append(Tamper(r["seq"], "its content does not match its hash (changed)"))
            prev = r["hash"]
            expected_seq = r["seq"] + 1
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != expected_seq - 1 or head.hash != prev:
        problems.append(Tamper(head.seq, "the log ends before its head (records removed at the end)"))
    return problems


# -- FHIR AuditEvent and MinLog ------------------------------------------------------------------------

AGENT_SYSTEMS = {"citizen": "urn:oid:1.2.208.176.1.2", "clinician": "urn:kroniker:autorisation",
                 "source": "urn:oid:1.2.208.176.1.1"}


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
    if row.get("org_sor"):
        agent["location"] = {"identifier": {"system": "urn:oid:1.2.208.176.1.1", "value": row["org_sor"]},
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
    purposes = []
    if row.get("purpose"):
        purposes.append({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                     "code": row["purpose"]}]})
    if row.get("override"):
        purposes.append({"coding": [{"system": "urn:kroniker:vaerdispring", "code": row["override_reason"],
                                     "display": "værdispring"}], "text": "værdispring"})
    if purposes:
        event["purposeOfEvent"] = purposes
    if row.get("patient_cpr"):
        event["entity"].append({"what": {"identifier": {"system": "urn:oid:1.2.208.176.1.2",
                                                        "value": row["patient_cpr"]}},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "1", "display": "Person"}})
    for doc in json.loads(row["documents"] or "[]"):
        event["entity"].append({"what": {"reference": f"DocumentReference/{doc}"},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "2", "display": "System Object"}})
    if not for_citizen:
        event["extension"] = [{"url": "urn:kroniker:audit-chain", "valueString": f"{row['seq']}:{row['hash']}"}]
        detail = json.loads(row["detail"] or "{}")
        if detail:
            event["entity"].append({"what": {"display": "request"}, "detail": [
                {"type": k, "valueString": json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}
                for k, v in sorted(detail.items())]})
    if not event["entity"]:
        del event["entity"]
    return event


def _instant(t: dt.datetime) -> str:
    return t.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def rows(engine: Engine, *, patient_cpr: str | None, minlog_only: bool, limit: int, offset: int
         ) -> tuple[list[dict[str, Any]], int]:
    where = []
    if patient_cpr is not None:
        where.append(audit_events.c.patient_cpr == patient_cpr)
    if minlog_only:
        where.append(audit_events.c.minlog.is_(True))
    q = sa.select(audit_events).where(*where).order_by(audit_events.c.seq.desc()).limit(limit).offset(offset)
    count = sa.select(sa.func.count()).select_from(audit_events).where(*where)
    with reading(engine) as conn:
        found = [dict(r) for r in conn.execute(q).mappings()]
        total = conn.execute(count).scalar_one()
    return found, total


def iter_all(engine: Engine) -> Iterator[dict[str, Any]]:
    with reading(engine) as conn:
        for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings():
            yield dict(r)
