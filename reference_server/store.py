"""The store: documents (immutable bytes plus derived metadata rows), treatment relations, blocks; each
submission one transaction with its audit record, committed before it is acknowledged."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from kroniker.reference_server import audit
from kroniker.reference_server.db import (
    Writer,
    blocks,
    clinical_resources,
    compiled,
    document_events,
    document_versions,
    documents,
    proxies,
    reading,
    treatment_relations,
)
from kroniker.reference_server.metadata import DocumentMeta
from kroniker.reference_server.policy import Block, DocInfo, Proxy, Relation


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class Stored:
    """A stored document's row, as the routes use it."""

    row: dict[str, Any]
    derived: dict[str, Any] | None = None  # the DocumentReference as derived, when this process just stored it

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def info(self) -> DocInfo:
        r = self.row
        # A diagnosis card has no service time: it is dated by the card (Composition.date), then by its arrival.
        return DocInfo(r["id"], r["patient_cpr"], r["author_org_sor"], r["status"],
                       r["service_start"] or r["doc_date"] or r["created"], r["type_code"],
                       r["doc_date"] or r["created"])

    def docref(self, base_url: str) -> dict[str, Any]:
        """The DocumentReference as served: the derived one plus what the server keeps (status, links)."""
        d = self.derived if self.derived is not None else json.loads(self.row["docref"])
        d["status"] = self.row["status"]
        updated = self.row.get("updated") or self.row["created"]
        d.setdefault("meta", {})["lastUpdated"] = updated.replace(tzinfo=dt.UTC).isoformat()
        d["meta"]["versionId"] = str(self.row.get("version") or 1)
        d["meta"] = {k: d["meta"][k] for k in ("versionId", "lastUpdated", "profile") if k in d["meta"]} | {
            k: v for k, v in d["meta"].items() if k not in ("versionId", "lastUpdated", "profile")}
        for c in d.get("content", []):
            c["attachment"]["url"] = f"{base_url}/fhir/Bundle/{self.id}"
        if self.row.get("replaces"):
            target = {"reference": f"DocumentReference/{self.row['replaces']}"}
            d["relatesTo"] = [{"code": "replaces", "target": target}]
        if self.row["status"] == "entered-in-error" and self.row.get("status_reason"):
            d["description"] = self.row["status_reason"]
        return d


@dataclass
class Submission:
    """One document of a transaction, ready to store (Store.submit_many)."""

    meta: DocumentMeta
    content: bytes
    content_type: str
    standard: str
    rec: audit.AuditRecord
    replaces: str | None = None


class Conflict(Exception):
    """The same identifier for a different document (XDS: XDSDuplicateUniqueIdInRegistry)."""


class StaleReplacement(Exception):
    """The document to replace stopped being current before this submission committed."""


class ListChanged(Exception):
    """A kept List to update (an MHD Folder) got another version before this submission committed."""


@dataclass
class ListUpdate:
    """A kept List's next version (an MHD Folder a transaction adds documents to, Store.submit_many): stored only
    if the List is still at the version it was checked at; with its audit record."""

    id: str
    version: str  # the version the update was checked against
    resource: dict[str, Any]  # the new version, its meta.versionId the next one
    rec: audit.AuditRecord


# The same code system under its FHIR URL and its OID (XDS metadata uses OIDs): either finds the other.
SYSTEM_ALIASES = {
    "http://loinc.org": "urn:oid:2.16.840.1.113883.6.1",
    "http://snomed.info/sct": "urn:oid:2.16.840.1.113883.6.96",
}
SYSTEM_ALIASES.update({v: k for k, v in list(SYSTEM_ALIASES.items())})


def _systems(system: str) -> list[str]:
    return [system, SYSTEM_ALIASES[system]] if system in SYSTEM_ALIASES else [system]


@dataclass
class SearchQuery:
    """Each group is one parameter occurrence (ORed values); groups are ANDed."""

    patient_cpr: str
    statuses: Sequence[str]
    types: Sequence[Sequence[tuple[str | None, str]]] = ()
    categories: Sequence[Sequence[str]] = ()
    authors: Sequence[Sequence[str]] = ()
    events: Sequence[Sequence[tuple[str | None, str]]] = ()
    created_from: dt.datetime | None = None  # ge
    created_to: dt.datetime | None = None  # lt
    limit: int = 50
    offset: int = 0


# The statements of a submission, built once (db.compiled compiles each once per dialect).
_SUPERSEDE = documents.update().where(
    (documents.c.id == sa.bindparam("replaced")) & (documents.c.status == "current")).values(
    status="superseded", version=documents.c.version + 1, updated=sa.bindparam("now"))
_INSERT_DOCUMENT = documents.insert()
_INSERT_EVENT = document_events.insert()


def _new_version(conn: Connection, doc_id: str) -> None:
    """Keep the document's status as it is now as its version (in the transaction that changed it)."""
    conn.execute(document_versions.insert().from_select(
        ["document_id", "version", "status", "status_reason", "recorded"],
        sa.select(documents.c.id, documents.c.version, documents.c.status, documents.c.status_reason,
                  sa.func.coalesce(documents.c.updated, documents.c.created)).where(documents.c.id == doc_id)))


class Store:
    def __init__(self, engine: Engine, audit_key: bytes) -> None:
        self.engine = engine
        self.writer = Writer(engine)
        self.audit_key = audit_key  # the audit chain's HMAC key (audit.load_or_create_key)

    def close(self) -> None:
        """Return the write connection and close the engine's pool (the app's shutdown)."""
        self.writer.close()
        self.engine.dispose()

    def record(self, rec: audit.AuditRecord) -> dict[str, Any]:
        """Append one audit record in a transaction of its own (refusals, searches, reads)."""
        with self.writer.transaction() as conn:
            return audit.append(conn, rec, self.audit_key)

    def seal(self) -> dict[str, Any] | None:
        """Re-key an audit chain from before migration 0003 (once; see audit.seal)."""
        with self.writer.transaction() as conn:
            return audit.seal(conn, self.audit_key)

    # -- documents -----------------------------------------------------------------------------------
    def submit(self, meta: DocumentMeta, content: bytes, content_type: str, standard: str, submitter_sor: str,
               rec: audit.AuditRecord, replaces: str | None = None) -> tuple[Stored, bool]:
        """Store a document and its audit record in one transaction: (stored, newly created).

        Resubmitting the identical document (same identifier, same bytes) returns the stored one.
        """
        sha = hashlib.sha256(content).hexdigest()
        now = utcnow()
        try:
            # The unique identifier decides: a resubmission fails the insert and is answered below, so a new
            # document costs no look-up first.
            with self.writer.transaction() as conn:
                row = self._insert(conn, meta, content, content_type, standard, submitter_sor, rec, replaces, now)
        except (IntegrityError, StaleReplacement) as exc:
            # The identifier is taken (a resubmission, or a concurrent one that won the race): the same bytes
            # are answered as the stored document; other bytes are a conflict.
            with reading(self.engine) as conn:
                existing = conn.execute(sa.select(documents).where(
                    documents.c.master_identifier == meta.master_identifier)).mappings().first()
            if existing is not None and existing["content_sha256"] == sha:
                rec.documents = [existing["id"]]
                rec.patient_cpr, rec.content_sha256 = existing["patient_cpr"], sha
                rec.detail = {**rec.detail, "idempotent": True}
                self.record(rec)
                return Stored(dict(existing)), False
            if isinstance(exc, StaleReplacement):
                raise
            raise Conflict(meta.master_identifier) from None
        return Stored(row, meta.docref), True

    def _insert(self, conn: Connection, meta: DocumentMeta, content: bytes, content_type: str, standard: str,
                submitter_sor: str, rec: audit.AuditRecord, replaces: str | None, now: dt.datetime) -> dict[str, Any]:
        """One document's rows and its audit record, in the caller's transaction (the stored row)."""
        sha = hashlib.sha256(content).hexdigest()
        if replaces is not None:
            if compiled(_SUPERSEDE, conn).execute(conn, {"replaced": replaces, "now": now}) != 1:
                raise StaleReplacement(replaces)
            _new_version(conn, replaces)
        row = {
            "id": meta.id, "master_identifier": meta.master_identifier, "content_sha256": sha,
            "content": content, "content_type": content_type, "standard": standard,
            "patient_cpr": meta.patient_cpr, "status": "current", "type_system": meta.type_system,
            "type_code": meta.type_code, "category_code": meta.category_code, "format_code": meta.format_code,
            "facility_code": meta.facility_code, "practice_code": meta.practice_code,
            "confidentiality": meta.confidentiality, "language": meta.language,
            "author_org_sor": meta.author_org_sor, "author_org_name": meta.author_org_name,
            "author_person": meta.author_person, "title": meta.title, "service_start": meta.service_start,
            "service_end": meta.service_end, "doc_date": meta.doc_date, "created": now,
            "replaces": replaces, "status_reason": None, "submitter_sor": submitter_sor, "version": 1,
            "updated": None,
            "docref": json.dumps(meta.docref, ensure_ascii=False),
        }
        compiled(_INSERT_DOCUMENT, conn).execute(conn, row)
        _new_version(conn, meta.id)
        if meta.events:
            compiled(_INSERT_EVENT, conn).executemany(conn, [
                {"document_id": meta.id, "system": s, "code": c, "patient_cpr": meta.patient_cpr}
                for s, c in meta.events])
        # The record carries what was stored (bytes' SHA-256, patient): the chain covers the document.
        rec.documents = [meta.id] + ([replaces] if replaces else [])
        rec.patient_cpr, rec.content_sha256 = meta.patient_cpr, sha
        audit.append(conn, rec, self.audit_key)
        return row

    def submit_many(self, items: Sequence[Submission], submitter_sor: str,
                    resources: Sequence[dict[str, Any]] = (), updates: Sequence[ListUpdate] = ()) -> list[Stored]:
        """Several documents (an MHD ITI-65 transaction), each with its audit record, the resources that go
        with them (the SubmissionSet List; rows as put_clinical's) and the kept Lists they update (a Folder's
        new version, each lastUpdated now) in ONE transaction: all stored, or none. An identifier already taken
        is a Conflict naming it (a transaction is not answered as a retry); a List updated meanwhile is
        ListChanged."""
        now = utcnow()
        try:
            with self.writer.transaction() as conn:
                for u in updates:
                    self._update_list(conn, u, now)
                rows = [self._insert(conn, i.meta, i.content, i.content_type, i.standard, submitter_sor, i.rec,
                                     i.replaces, now) for i in items]
                if resources:
                    conn.execute(clinical_resources.insert(), [
                        {**r, "created": now, "resource": json.dumps(r["resource"], ensure_ascii=False,
                                                                     separators=(",", ":"))} for r in resources])
        except IntegrityError:
            unique_ids = [r["unique_id"] for r in resources if r.get("unique_id")]
            with reading(self.engine) as conn:
                taken = conn.execute(sa.select(documents.c.master_identifier).where(
                    documents.c.master_identifier.in_([i.meta.master_identifier for i in items])
                    | documents.c.id.in_([i.meta.id for i in items]))).scalars().first()
                if taken is None and unique_ids:  # a SubmissionSet's or Folder's uniqueId (XDS: the same error)
                    taken = conn.execute(sa.select(clinical_resources.c.unique_id).where(
                        clinical_resources.c.unique_id.in_(unique_ids))).scalars().first()
            raise Conflict(taken or "") from None
        return [Stored(row, i.meta.docref) for row, i in zip(rows, items, strict=True)]

    def _update_list(self, conn: Connection, u: ListUpdate, now: dt.datetime) -> None:
        """A List's next version, if it is still at the version it was checked at (ListChanged otherwise)."""
        c = clinical_resources.c
        kept = conn.execute(sa.select(c.resource).where((c.id == u.id) & (c.resource_type == "List"))
                            .with_for_update()).scalar()
        if kept is None or str((json.loads(kept).get("meta") or {}).get("versionId", "1")) != u.version:
            raise ListChanged(u.id)
        resource = {**u.resource, "meta": {**(u.resource.get("meta") or {}),
                                           "lastUpdated": now.replace(tzinfo=dt.UTC).isoformat()}}
        conn.execute(clinical_resources.update().where(c.id == u.id).values(
            resource=json.dumps(resource, ensure_ascii=False, separators=(",", ":"))))
        audit.append(conn, u.rec, self.audit_key)

    def record_all(self, recs: Sequence[audit.AuditRecord]) -> None:
        """Append audit records in one transaction (a resubmitted transaction's, one per document)."""
        with self.writer.transaction() as conn:
            for rec in recs:
                audit.append(conn, rec, self.audit_key)

    def list_by_unique_id(self, unique_id: str) -> dict[str, Any] | None:
        """The stored MHD List (SubmissionSet or Folder) with this XDS uniqueId, if any."""
        c = clinical_resources.c
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(clinical_resources).where(
                (c.unique_id == unique_id) & (c.resource_type == "List"))).mappings().first()
        return {**row, "resource": _served(row)} if row else None

    def submission_set_holding(self, patient_cpr: str, doc_id: str) -> dict[str, Any] | None:
        """The stored SubmissionSet whose entries name the document (the patient's own, newest first)."""
        wanted = {"item": {"reference": f"DocumentReference/{doc_id}"}}
        return next((r for r in self.clinical(patient_cpr, "List", "submissionset")
                     if wanted in r["resource"].get("entry", [])), None)

    def find_identical(self, master_identifier: str, content: bytes) -> Stored | None:
        """The stored document with this identifier and exactly these bytes (a retried submission), if any."""
        sha = hashlib.sha256(content).hexdigest()
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(documents).where(
                (documents.c.master_identifier == master_identifier) & (documents.c.content_sha256 == sha))
            ).mappings().first()
        return Stored(dict(row)) if row else None

    def get(self, doc_id: str) -> Stored | None:
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(documents).where(documents.c.id == doc_id)).mappings().first()
        return Stored(dict(row)) if row else None

    def versions(self, doc_id: str) -> list[Stored]:
        """The document as it was at each version, newest first (empty when there is no such document)."""
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(*[c for c in documents.c if c.name != "content"]).where(
                documents.c.id == doc_id)).mappings().first()
            if row is None:
                return []
            found = conn.execute(sa.select(document_versions).where(document_versions.c.document_id == doc_id)
                                 .order_by(document_versions.c.version.desc())).mappings().all()
        return [Stored({**row, "status": v["status"], "status_reason": v["status_reason"], "version": v["version"],
                        "updated": v["recorded"]}) for v in found]

    def search(self, q: SearchQuery) -> list[Stored]:
        """Documents matching a query, newest first (paging is the caller's, after access filtering)."""
        cols = [c for c in documents.c if c.name != "content"]  # the bytes stay in the table
        where = [documents.c.patient_cpr == q.patient_cpr, documents.c.status.in_(list(q.statuses))]
        for group in q.types:
            where.append(sa.or_(*[(documents.c.type_code == code) & (
                sa.true() if system is None else documents.c.type_system.in_(_systems(system)))
                for system, code in group]))
        for cats in q.categories:
            where.append(documents.c.category_code.in_(list(cats)))
        for authors in q.authors:
            where.append(documents.c.author_org_sor.in_(list(authors)))
        if q.created_from is not None:
            where.append(documents.c.created >= q.created_from)
        if q.created_to is not None:
            where.append(documents.c.created < q.created_to)
        for group in q.events:
            # The patient's own event rows only (index ix_document_events_patient_code), never every document
            # with a code that many patients' documents carry (a care package's).
            ev = sa.select(document_events.c.document_id).where(
                document_events.c.patient_cpr == q.patient_cpr, sa.or_(*[
                    (document_events.c.code == code) & (
                        sa.true() if system is None else document_events.c.system.in_(_systems(system)))
                    for system, code in group]))
            where.append(documents.c.id.in_(ev))
        stmt = sa.select(*cols).where(*where).order_by(documents.c.created.desc(), documents.c.id)
        with reading(self.engine) as conn:
            return [Stored(dict(r)) for r in conn.execute(stmt).mappings()]

    def set_status(self, doc_id: str, status: str, reason: str, rec: audit.AuditRecord,
                   expected_version: int | None = None) -> Stored | None:
        """Set a document's status (a new version) with its audit record, in one transaction. With
        expected_version, only while the document is at that version (FHIR's version-aware update): None when
        there is no such document, or it is at another version."""
        where = documents.c.id == doc_id
        if expected_version is not None:
            where = where & (documents.c.version == expected_version)
        with self.writer.transaction() as conn:
            done = conn.execute(documents.update().where(where)
                                .values(status=status, status_reason=reason, version=documents.c.version + 1,
                                        updated=utcnow()))
            if done.rowcount != 1:
                return None
            _new_version(conn, doc_id)
            audit.append(conn, rec, self.audit_key)
        return self.get(doc_id)

    # -- questionnaire responses, scores and triage impressions (issue 12) ----------------------------------
    def put_clinical(self, rows: Sequence[dict[str, Any]], rec: audit.AuditRecord) -> None:
        """Store resources (a response and its scores; a suggestion; a decision) and the audit record in one
        transaction. Each row: id, resource_type, kind, patient_cpr, questionnaire, derived_from, submitter,
        resource (a dict)."""
        now = utcnow()
        with self.writer.transaction() as conn:
            conn.execute(clinical_resources.insert(), [
                {**r, "created": now, "resource": json.dumps(r["resource"], ensure_ascii=False,
                                                             separators=(",", ":"))} for r in rows])
            audit.append(conn, rec, self.audit_key)

    def clinical(self, patient_cpr: str, resource_type: str, kind: str | None = None) -> list[dict[str, Any]]:
        """A patient's stored resources of a type (newest first), each row with its resource parsed."""
        c = clinical_resources.c
        query = sa.select(clinical_resources).where((c.patient_cpr == patient_cpr) & (c.resource_type == resource_type))
        if kind is not None:
            query = query.where(c.kind == kind)
        with reading(self.engine) as conn:
            rows = conn.execute(query.order_by(c.created.desc(), c.id)).mappings().all()
        return [{**r, "resource": _served(r)} for r in rows]

    def clinical_one(self, resource_type: str, rid: str) -> dict[str, Any] | None:
        c = clinical_resources.c
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(clinical_resources).where(
                (c.id == rid) & (c.resource_type == resource_type))).mappings().first()
        return {**row, "resource": _served(row)} if row else None

    # -- treatment relations and blocks -------------------------------------------------------------------
    def add_relation(self, patient_cpr: str, clinician: str | None, org_sor: str | None, evidence: str,
                     start: dt.datetime, end: dt.datetime | None, rec: audit.AuditRecord) -> str:
        rid = str(uuid.uuid4())
        with self.writer.transaction() as conn:
            conn.execute(treatment_relations.insert().values(
                id=rid, patient_cpr=patient_cpr, clinician_auth_id=clinician, org_sor=org_sor, evidence=evidence,
                start=start, end=end, created=utcnow()))
            audit.append(conn, rec, self.audit_key)
        return rid

    def relations(self, patient_cpr: str) -> list[Relation]:
        with reading(self.engine) as conn:
            return [Relation(r.patient_cpr, r.clinician_auth_id, r.org_sor, r.start, r.end, r.evidence)
                    for r in conn.execute(sa.select(treatment_relations)
                                          .where(treatment_relations.c.patient_cpr == patient_cpr))]

    def add_block(self, patient_cpr: str, kind: str, clinician: str | None, org_sor: str | None,
                  start: dt.datetime | None, end: dt.datetime | None, by: str, rec: audit.AuditRecord) -> str:
        bid = str(uuid.uuid4())
        with self.writer.transaction() as conn:
            conn.execute(blocks.insert().values(
                id=bid, patient_cpr=patient_cpr, kind=kind, clinician_auth_id=clinician, org_sor=org_sor,
                period_start=start, period_end=end, created=utcnow(), created_by=by))
            audit.append(conn, rec, self.audit_key)
        return bid

    def lift_block(self, block_id: str, by: str, rec: audit.AuditRecord) -> bool:
        with self.writer.transaction() as conn:
            done = conn.execute(blocks.update().where((blocks.c.id == block_id) & blocks.c.lifted.is_(None))
                                .values(lifted=utcnow(), lifted_by=by))
            audit.append(conn, rec, self.audit_key)
            return done.rowcount == 1

    def block_row(self, block_id: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(blocks).where(blocks.c.id == block_id)).mappings().first()
        return dict(row) if row else None

    def blocks(self, patient_cpr: str, *, include_lifted: bool = False) -> list[dict[str, Any]]:
        where = [blocks.c.patient_cpr == patient_cpr]
        if not include_lifted:
            where.append(blocks.c.lifted.is_(None))
        with reading(self.engine) as conn:
            return [dict(r) for r in conn.execute(sa.select(blocks).where(*where).order_by(blocks.c.created))
                    .mappings()]

    def active_blocks(self, patient_cpr: str) -> list[Block]:
        return [Block(b["id"], b["patient_cpr"], b["kind"], b["clinician_auth_id"], b["org_sor"], b["period_start"],
                      b["period_end"]) for b in self.blocks(patient_cpr)]


    # -- proxies (custody, fuldmagt) -----------------------------------------------------------------------
    def add_proxy(self, kind: str, holder_cpr: str, subject_cpr: str, start: dt.datetime, end: dt.datetime | None,
                  by: str, rec: audit.AuditRecord) -> str:
        pid = str(uuid.uuid4())
        with self.writer.transaction() as conn:
            conn.execute(proxies.insert().values(
                id=pid, kind=kind, holder_cpr=holder_cpr, subject_cpr=subject_cpr, start=start, end=end,
                created=utcnow(), created_by=by))
            audit.append(conn, rec, self.audit_key)
        return pid

    def end_proxy(self, proxy_id: str, by: str, rec: audit.AuditRecord) -> bool:
        """End a proxy now (one that ended already keeps its end): whether it was in force until now."""
        now = utcnow()
        with self.writer.transaction() as conn:
            done = conn.execute(proxies.update().where(
                (proxies.c.id == proxy_id) & (proxies.c.end.is_(None) | (proxies.c.end > now)))
                .values(end=now, ended_by=by))
            audit.append(conn, rec, self.audit_key)
            return done.rowcount == 1

    def proxy_row(self, proxy_id: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(sa.select(proxies).where(proxies.c.id == proxy_id)).mappings().first()
        return dict(row) if row else None

    def proxy_rows(self, holder_cpr: str | None = None, subject_cpr: str | None = None) -> list[dict[str, Any]]:
        where = []
        if holder_cpr is not None:
            where.append(proxies.c.holder_cpr == holder_cpr)
        if subject_cpr is not None:
            where.append(proxies.c.subject_cpr == subject_cpr)
        with reading(self.engine) as conn:
            return [dict(r) for r in conn.execute(
                sa.select(proxies).where(*where).order_by(proxies.c.created, proxies.c.id)).mappings()]

    def proxies_of(self, holder_cpr: str, subject_cpr: str) -> list[Proxy]:
        """The proxies between a holder and a subject (the access rules decide which are in force)."""
        return [Proxy(r["id"], r["kind"], r["holder_cpr"], r["subject_cpr"], r["start"], r["end"])
                for r in self.proxy_rows(holder_cpr, subject_cpr)]

def _served(row: Any) -> dict[str, Any]:
    """A stored clinical resource as served: stored once and never changed, so version 1, updated when stored;
    but an MHD List, whose meta only the server writes: a Folder documents were added to is at a later version,
    updated then (Store._update_list)."""
    resource: dict[str, Any] = json.loads(row["resource"])
    meta = {"versionId": "1", "lastUpdated": row["created"].replace(tzinfo=dt.UTC).isoformat()}
    if row["resource_type"] == "List":
        kept = resource.get("meta") or {}
        meta |= {k: str(kept[k]) for k in ("versionId", "lastUpdated") if k in kept}
    resource["meta"] = meta | {k: v for k, v in (resource.get("meta") or {}).items() if k not in meta}
    return {"resourceType": resource.pop("resourceType"), "id": resource.pop("id", row["id"]), **resource}
