"""MHD ITI-65 Provide Document Bundle, and FHIR update (PUT) of a document Bundle.

ITI-65 (IHE MHD 4.2, 2:3.65): `POST [base]` with a transaction Bundle holding the SubmissionSet List, one
DocumentReference per document and each document, as a Binary (base64 of the document's bytes) or as the document
Bundle itself; the entries reference each other by fullUrl (urn:uuid). Each document goes the way every submission
goes (app._prepare: the validator, the derived metadata, the access rule, replacement by `relatesTo` as by
`?replaces=`); the DocumentReference the vendor supplied is checked against MedCom's DocumentReference profile and
against what the server derives from the document, a mismatch answered with the XDS error code IHE lists (ITI TF-3
Table 4.2.4.1-2) in `issue.details.coding`. New Folders are kept; a Folder kept already may get documents of the
transaction added (PUT List/{id}: its next version, by the organisation that made it, nothing taken out). Then
everything is stored in one database transaction (all or nothing) and answered with a transaction-response, one
entry per request entry, in order.

`PUT [base]/Bundle/{id}` is FHIR's update-as-create of a document whose Bundle.id is {id}: what fhirpy's `save()`
and `create()` send for a resource with an id. Documents are immutable: the same bytes again are answered as
stored, other bytes under a stored id are refused (409); a new version is a new document that replaces the old.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kroniker.reference_server import formats, inputs
from kroniker.reference_server.app import (
    FHIR_JSON,
    ApiError,
    Call,
    Prepared,
    _etag,
    _override,
    _prepare,
    _read_decision,
    _record,
    base_url,
    fhir,
)
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.metadata import instant
from kroniker.reference_server.store import (
    SYSTEM_ALIASES,
    Conflict,
    ListChanged,
    ListUpdate,
    StaleReplacement,
    Stored,
    Submission,
)
from kroniker.validators import messages
from kroniker.validators.identifiers import CPR_SYSTEM, SOR_SYSTEM
from kroniker.validators.render import operation_outcome
from kroniker.validators.source import Unreadable, parse

# IHE MHD's List types (https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes): submissionset, folder.
LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
BASE_LIST = "http://hl7.org/fhir/StructureDefinition/List"
# relatesTo codes the server does not act on, and the warning IHE gives for each (ITI-65 Table 2:3.65.4.1.3-1;
# IHE names none for signs: kroniker's own code).
NOT_PROCESSED = {"transforms": "PartialTransformContentNotProcessed", "appends": "PartialAppendContentNotProcessed",
                 "signs": "relation-not-processed"}
DOCUMENT_MEDIA = {"application/fhir+json": "application/fhir+json", "application/json": "application/fhir+json",
                  "application/fhir+xml": "application/fhir+xml", "application/xml": "application/fhir+xml"}


def _d(value: Any) -> dict[str, Any]:
    """An element that must be an object: itself, or {} when it is not one (what the checks then say about it)."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    """An element that must be an array: itself, or [] when it is not one."""
    return value if isinstance(value, list) else []


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_provide_bundle(data: dict[str, Any]) -> bool:
    """Whether a transaction is an ITI-65 submission: it carries a List (the SubmissionSet)."""
    return any(isinstance(e, dict) and isinstance(e.get("resource"), dict)
               and e["resource"].get("resourceType") == "List" for e in _l(data.get("entry")))


def _codes(concept: Any) -> list[tuple[str | None, str]]:
    if not isinstance(concept, dict):
        return []
    return [(_s(c.get("system")), c["code"]) for c in _l(concept.get("coding"))
            if isinstance(c, dict) and isinstance(c.get("code"), str)]


def _same_system(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b or SYSTEM_ALIASES.get(a) == b


def _list_type(resource: dict[str, Any]) -> str | None:
    """Which MHD List a List entry is (List.code from MHDlistTypes): submissionset, folder, or neither."""
    codes = [c for s, c in _codes(resource.get("code")) if s in (None, LIST_TYPES)]
    return next((t for t in ("submissionset", "folder") if t in codes), None)


def unique_id(resource: dict[str, Any]) -> str | None:
    """A SubmissionSet's or Folder's XDS uniqueId: the identifier typed uniqueId (MHD 4.x, MHDIdentifierType), or
    the one with use `usual` (how MHD 3 and 4.0 told it from the entryUUID, `official`)."""
    idents = [i for i in _l(resource.get("identifier")) if isinstance(i, dict) and isinstance(i.get("value"), str)]
    typed = [i for i in idents if "uniqueId" in [c for _, c in _codes(i.get("type"))]]
    found = typed or [i for i in idents if i.get("use") == "usual" and not _codes(i.get("type"))]
    return found[0]["value"] if found else None


class Transaction:
    """The entries of an ITI-65 transaction, by kind, and its references resolved by fullUrl."""

    def __init__(self, data: dict[str, Any]) -> None:
        entries = data.get("entry")
        if not isinstance(entries, list) or not entries:
            raise ApiError(400, "mhd-entry", code="structure", finding="XDSRegistryMetadataError", index=0)
        self.entries: list[dict[str, Any]] = []
        self.by_url: dict[str, int] = {}
        self.updates: dict[int, str] = {}  # a kept Folder updated (PUT List/{id}): its entry, its id
        for i, e in enumerate(entries):
            resource = e.get("resource") if isinstance(e, dict) else None
            request = e.get("request") if isinstance(e, dict) else None
            full_url = e.get("fullUrl") if isinstance(e, dict) else None
            method = request.get("method") if isinstance(request, dict) else None
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            url = request.get("url") if isinstance(request, dict) else None
            # a Folder kept here may be updated, documents added to it (MHDprovideFolderActions: POST, PUT)
            list_put = re.fullmatch(r"List/([A-Za-z0-9\-.]{1,64})", url) \
                if kind == "List" and method == "PUT" and isinstance(url, str) else None
            if kind == "List" and method == "PUT" and isinstance(resource, dict) and isinstance(full_url, str) and (
                    list_put is None or _list_type(resource) != "folder"):
                raise ApiError(422, "mhd-folder-update", code="not-supported", finding="XDSRegistryMetadataError",
                               index=i, found=str(url)[:80])
            # a Patient may come as POST Patient or PUT Patient/{id} (MHDprovidePatientActions); it is matched
            patient_put = kind == "Patient" and method == "PUT" and isinstance(url, str) \
                and re.fullmatch(r"Patient/[A-Za-z0-9\-.]{1,64}", url) is not None
            if not (isinstance(resource, dict) and isinstance(full_url, str)
                    and ((method == "POST" and url == kind) or patient_put or list_put is not None)):
                raise ApiError(400, "mhd-entry", code="structure", finding="XDSRegistryMetadataError", index=i)
            if list_put is not None:
                if list_put.group(1) in self.updates.values():
                    raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError",
                                   index=i, detail=f"{url} is updated twice in the transaction")
                self.updates[i] = list_put.group(1)
            if kind not in ("List", "DocumentReference", "Binary", "Bundle", "Patient"):
                raise ApiError(422, "mhd-unsupported", code="not-supported", finding="XDSRegistryMetadataError",
                               index=i, type=str(kind)[:40])
            if full_url in self.by_url:
                raise ApiError(400, "mhd-entry", code="structure", finding="XDSRegistryMetadataError", index=i)
            self.by_url[full_url] = i
            self.entries.append(resource)
        lists = [i for i, r in enumerate(self.entries) if r["resourceType"] == "List"]
        self.docrefs = [i for i, r in enumerate(self.entries) if r["resourceType"] == "DocumentReference"]
        self.patients = [i for i, r in enumerate(self.entries) if r["resourceType"] == "Patient"]
        for i in lists:
            if _list_type(self.entries[i]) is None:
                raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError", index=i,
                               detail="List.code is neither submissionset nor folder (MHDlistTypes)")
        sets = [i for i in lists if _list_type(self.entries[i]) == "submissionset"]
        self.folders = [i for i in lists if _list_type(self.entries[i]) == "folder" and i not in self.updates]
        self.updated = [i for i in lists if i in self.updates]
        if len(sets) != 1:
            raise ApiError(422, "mhd-submissionset", code="business-rule", finding="XDSRegistryMetadataError",
                           detail=f"{len(sets)} SubmissionSet Lists, one expected")
        self.list_index = sets[0]
        self.submission_set = self.entries[self.list_index]
        if len(self.patients) > 1:  # the Provide Bundle's Patient slice is 0..1
            raise ApiError(422, "mhd-patients", code="business-rule", finding="XDSRegistryMetadataError",
                           index=self.patients[1])
        if not self.docrefs:
            raise ApiError(422, "mhd-submissionset", code="business-rule", finding="XDSMissingDocumentMetadata",
                           detail="no DocumentReference")
        # The SubmissionSet names each DocumentReference and each Folder, new or updated, once (XDS: its HasMember
        # associations); in the order it names them.
        self.listed = []
        for item in _l(self.submission_set.get("entry")):
            ref = _d(_d(item).get("item")).get("reference")
            self.listed.append(self.resolve(ref, self.list_index))
        if sorted(self.listed) != sorted(self.docrefs + self.folders + self.updated):
            raise ApiError(422, "mhd-submissionset", code="business-rule", finding="XDSRegistryMetadataError",
                           detail="List.entry does not name each DocumentReference and each Folder of the "
                                  "transaction once")
        self.members: dict[int, list[int]] = {f: self._folder_members(f) for f in self.folders}
        # an updated Folder's entries, in its order: a kept document's id, or a DocumentReference entry added
        self.order: dict[int, list[str | int]] = {f: self._folder_update(f) for f in self.updated}
        self.added: dict[int, list[int]] = {f: [e for e in o if isinstance(e, int)] for f, o in self.order.items()}
        ids = [u for u in (unique_id(self.entries[i]) for i in [self.list_index, *self.folders, *self.updated])
               if u is not None]
        if len(set(ids)) != len(ids):
            raise ApiError(422, "mhd-folder", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                           index=[*self.folders, *self.updated][0],
                           detail="two Lists of the transaction have the same uniqueId")
        if any(len(u) > 300 for u in ids):
            raise ApiError(422, "mhd-submissionset", code="business-rule", finding="XDSRegistryMetadataError",
                           detail="a uniqueId longer than 300 characters")
        # Each DocumentReference names its document; each document has its one DocumentReference.
        self.document_of: dict[int, int] = {}
        for i in self.docrefs:
            content = self.entries[i].get("content")
            attachment = content[0].get("attachment") if isinstance(content, list) and len(content) == 1 \
                and isinstance(content[0], dict) else None
            url = attachment.get("url") if isinstance(attachment, dict) else None
            target = self.by_url.get(url) if isinstance(url, str) else None
            if target is None or self.entries[target]["resourceType"] not in ("Binary", "Bundle"):
                raise ApiError(422, "mhd-missing-document", code="business-rule", finding="XDSMissingDocument",
                               index=i, url=str(url)[:200])
            if target in self.document_of.values():
                raise ApiError(422, "mhd-missing-metadata", code="business-rule",
                               finding="XDSMissingDocumentMetadata", index=target)
            self.document_of[i] = target
        for i, r in enumerate(self.entries):
            if r["resourceType"] in ("Binary", "Bundle") and i not in self.document_of.values():
                raise ApiError(422, "mhd-missing-metadata", code="business-rule",
                               finding="XDSMissingDocumentMetadata", index=i)

    def _folder_members(self, index: int) -> list[int]:
        """A new Folder's documents: DocumentReferences of this transaction, each once (MHD's Folder profile:
        mode working, entry.item a DocumentReference); a new Folder is current."""
        members: list[int] = []
        seen: set[int] = set()
        for ref in self._folder_refs(index):
            target = self.resolve(ref, index)  # documents of this submission only: UnresolvedReferenceException
            self._member(index, target, ref, seen)
            members.append(target)
            seen.add(target)
        return members

    def _folder_update(self, index: int) -> list[str | int]:
        """An updated Folder's entries: the documents it holds, by their id here (DocumentReference/{id}), and
        DocumentReferences of this transaction added to it; each once, at least one added."""
        order: list[str | int] = []
        seen: set[str | int] = set()
        for ref in self._folder_refs(index):
            if isinstance(ref, str) and ref in self.by_url:
                target: str | int = self.by_url[ref]
                self._member(index, self.by_url[ref], ref, seen)
            else:
                kept = re.fullmatch(r"(?:.*/)?DocumentReference/([A-Za-z0-9\-.]{1,64})", _s(ref) or "")
                if kept is None:
                    raise ApiError(422, "mhd-unresolved", code="not-found", finding="UnresolvedReferenceException",
                                   index=index, reference=str(ref)[:200])
                target = kept.group(1)
                if target in seen:
                    raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError",
                                   index=index, detail=f"List.entry names {str(ref)[:200]} twice")
            order.append(target)
            seen.add(target)
        if not any(isinstance(e, int) for e in order):
            raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError", index=index,
                           detail="the Folder is updated (PUT) but adds no DocumentReference of the transaction")
        return order

    def _folder_refs(self, index: int) -> list[Any]:
        """A Folder's entry references (MHD's Folder profile: mode working); a Folder sent is current."""
        folder = self.entries[index]
        if folder.get("mode") != "working" or folder.get("status") != "current":
            raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError", index=index,
                           detail=f"mode {str(folder.get('mode'))[:20]}, status {str(folder.get('status'))[:20]}; "
                                  "a Folder sent is mode working, status current")
        return [_d(_d(item).get("item")).get("reference") for item in _l(folder.get("entry"))]

    def _member(self, index: int, target: int, ref: Any, seen: set[Any]) -> None:
        """A Folder's entry naming an entry of the transaction: a DocumentReference (entry.item is
        Reference(DocumentReference)), named once."""
        if self.entries[target]["resourceType"] != "DocumentReference":
            raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError",
                           index=index, detail=f"List.entry {str(ref)[:200]} is not a DocumentReference")
        if target in seen:
            raise ApiError(422, "mhd-folder", code="business-rule", finding="XDSRegistryMetadataError",
                           index=index, detail=f"List.entry names {str(ref)[:200]} twice")

    def resolve(self, ref: Any, index: int) -> int:
        """The entry a reference within the transaction names (by fullUrl), or UnresolvedReferenceException."""
        if not isinstance(ref, str) or ref not in self.by_url:
            raise ApiError(422, "mhd-unresolved", code="not-found", finding="UnresolvedReferenceException",
                           index=index, reference=str(ref)[:200])
        return self.by_url[ref]

    def document_bytes(self, index: int) -> bytes:
        """The document's bytes: a Binary's data decoded, or the document Bundle as JSON."""
        r = self.entries[index]
        if r["resourceType"] == "Bundle":
            try:
                return json.dumps(r, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: escaped, and refused as such by the submission
                return json.dumps(r).encode("ascii")
        data = r.get("data")
        if DOCUMENT_MEDIA.get(inputs.media_type(_s(r.get("contentType"))) or "") is None or not isinstance(data, str):
            raise ApiError(422, "mhd-binary", code="business-rule", finding="XDSMissingDocument", index=index,
                           found=str(r.get("contentType"))[:60])
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "mhd-binary", code="business-rule", finding="XDSMissingDocument", index=index,
                           found="base64") from None


def _subject_cpr(subject: Any, holder: dict[str, Any], tx: Transaction, index: int) -> str | None:
    """The CPR number a subject names: by identifier, a contained Patient (#id), a Patient entry of the
    transaction (fullUrl), or Patient/<CPR> (the server's Patient ids are CPR numbers)."""
    if not isinstance(subject, dict):
        return None
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == CPR_SYSTEM and isinstance(ident.get("value"), str):
        return ident["value"]
    ref = subject.get("reference")
    if not isinstance(ref, str):
        return None
    patient: Any = None
    if ref.startswith("#"):
        patient = next((c for c in _l(holder.get("contained")) if isinstance(c, dict) and c.get("id") == ref[1:]),
                       None)
    elif ref.startswith("urn:"):
        patient = tx.entries[tx.resolve(ref, index)]
    else:
        found = re.fullmatch(r"(?:.*/)?Patient/([0-9]{10})", ref)
        return found.group(1) if found else None
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return None
    return _patient_cpr(patient)


def _author_sors(docref: dict[str, Any]) -> list[str]:
    """The SOR numbers of the organisations the supplied DocumentReference names as author."""
    out = []
    contained = {c["id"]: c for c in _l(docref.get("contained"))
                 if isinstance(c, dict) and isinstance(c.get("id"), str)}
    for a in _l(docref.get("author")):
        if not isinstance(a, dict):
            continue
        org = contained.get(a["reference"][1:]) if isinstance(a.get("reference"), str) \
            and a["reference"].startswith("#") else None
        idents = _l(_d(org).get("identifier"))
        if isinstance(a.get("identifier"), dict):
            idents = [a["identifier"]]
        out += [i["value"] for i in idents if isinstance(i, dict) and i.get("system") == SOR_SYSTEM
                and isinstance(i.get("value"), str)]
    return out


def _mismatch(index: int, field: str, found: Any, expected: Any, finding: str = "XDSRegistryMetadataError",
              key: str = "mhd-metadata") -> ApiError:
    return ApiError(422, key, code="business-rule", finding=finding, index=index, field=field,
                    found=str(found)[:200], expected=str(expected)[:200])


def check_supplied(call: Call, tx: Transaction, index: int, p: Prepared) -> None:
    """The vendor's DocumentReference against MedCom's profile and against what the server derived."""
    d, meta = tx.entries[index], p.meta
    master = _s(_d(d.get("masterIdentifier")).get("value"))
    if master != meta.master_identifier:
        raise _mismatch(index, "masterIdentifier", master, meta.master_identifier, "XDSDocumentUniqueIdError",
                        "mhd-unique-id")
    cpr = _subject_cpr(d.get("subject"), d, tx, index)
    if cpr is None:
        raise ApiError(422, "mhd-unknown-patient", code="business-rule", finding="XDSUnknownPatientId",
                       index=index)
    if cpr != meta.patient_cpr:
        raise _mismatch(index, "subject", cpr, meta.patient_cpr, "XDSPatientIdDoesNotMatch", "mhd-patient")
    listed = _subject_cpr(tx.submission_set.get("subject"), tx.submission_set, tx, tx.list_index)
    if listed != meta.patient_cpr:
        raise _mismatch(tx.list_index, "List.subject", listed, meta.patient_cpr, "XDSPatientIdDoesNotMatch",
                        "mhd-patient")
    types = _codes(d.get("type"))
    if not any(c == meta.type_code and _same_system(s, meta.type_system) for s, c in types):
        raise _mismatch(index, "type", ", ".join(c for _, c in types) or "-", meta.type_code)
    categories = [c for cc in _l(d.get("category")) for _, c in _codes(cc)]
    if categories and meta.category_code not in categories:
        raise _mismatch(index, "category", ", ".join(categories), meta.category_code)
    sors = _author_sors(d)
    if any(s != meta.author_org_sor for s in sors):
        raise _mismatch(index, "author", ", ".join(sors), meta.author_org_sor)
    context: dict[str, Any] = d["context"] if isinstance(d.get("context"), dict) else {}
    start = _s(_d(context.get("period")).get("start"))
    if start is not None and (_instant(start) != meta.service_start):
        raise _mismatch(index, "context.period.start", start, meta.service_start)
    derived_events = {c for _, c in meta.events}
    events = [c for ev in _l(context.get("event")) for _, c in _codes(ev)]
    if any(c not in derived_events for c in events):
        raise _mismatch(index, "context.event", ", ".join(events), ", ".join(sorted(derived_events)) or "-")
    labels = [c for label in _l(d.get("securityLabel")) for _, c in _codes(label)]
    if labels and (meta.confidentiality or "N") not in labels:
        raise _mismatch(index, "securityLabel", ", ".join(labels), meta.confidentiality or "N")
    attachment = d["content"][0]["attachment"]
    creation, derived_creation = _s(attachment.get("creation")), meta.docref["content"][0]["attachment"].get("creation")
    if creation is not None and _instant(creation) != _instant(derived_creation):
        raise _mismatch(index, "content.attachment.creation", creation, derived_creation)
    media = DOCUMENT_MEDIA.get(inputs.media_type(_s(attachment.get("contentType"))) or "")
    if media != p.content_type:
        raise _mismatch(index, "content.attachment.contentType", attachment.get("contentType"), p.content_type,
                        "XDSRepositoryMetadataError", "mhd-repository")
    if "size" in attachment and attachment["size"] != len(p.body):
        raise _mismatch(index, "content.attachment.size", attachment["size"], len(p.body), "XDSNonIdenticalSize",
                        "mhd-repository")
    sha1 = base64.b64encode(hashlib.sha1(p.body).digest()).decode("ascii")
    if "hash" in attachment and attachment["hash"] != sha1:
        raise _mismatch(index, "content.attachment.hash", attachment["hash"], sha1, "XDSNonIdenticalHash",
                        "mhd-repository")
    # MedCom's DocumentReference profile (medcom.fhir.dk.document; the ConditionList's own for diagnosis cards),
    # with the server's own retrieve URL where the vendor wrote the transaction's urn:uuid.
    supplied = json.loads(json.dumps(d))
    supplied["content"][0]["attachment"]["url"] = meta.docref["content"][0]["attachment"]["url"]
    supplied.pop("relatesTo", None)  # the target is checked by the replacement rules, not by the profile
    standard = p.report.standard
    assert standard is not None, "a prepared document's standard is known"
    report = call.ctx.validator.validate_resource(supplied, meta.profile, standard, trusted=p.bundled)
    call.ctx.validator.save_plans()
    if not report.valid:
        oo = operation_outcome(report, call.lang)
        raise ApiError(422, "mhd-profile", code="invalid", finding="XDSRegistryMetadataError", index=index,
                       profile=meta.profile, detail="; ".join(
                           i["diagnostics"] for i in oo["issue"] if i["severity"] == "error")[:2000])


def _instant(value: Any) -> Any:
    try:
        return instant(value)
    except (ValueError, OverflowError):
        return None


def _replaces(d: dict[str, Any], index: int) -> tuple[str | None, list[str]]:
    """The DocumentReference a supplied one replaces (relatesTo code replaces), and the warnings for codes the
    server does not act on."""
    replaced, warnings = None, []
    for rel in _l(d.get("relatesTo")):
        code = _s(_d(rel).get("code"))
        if code == "replaces":
            ref = _s(_d(rel.get("target")).get("reference"))
            found = re.fullmatch(r"(?:.*/)?DocumentReference/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?",
                                 ref or "")
            if found is None or replaced is not None:
                raise ApiError(422, "mhd-relates-to", code="business-rule", finding="XDSRegistryMetadataError",
                               index=index, reference=str(ref)[:200])
            replaced = found.group(1)
        elif code in NOT_PROCESSED:
            warnings.append(NOT_PROCESSED[code])
        else:
            raise ApiError(422, "mhd-relates-to", code="business-rule", finding="XDSRegistryMetadataError",
                           index=index, reference=str(code)[:40])
    return replaced, warnings


async def provide_bundle(call: Call, data: dict[str, Any]) -> Response:
    """ITI-65: the transaction checked whole, then stored whole."""
    decision = call.rule(call.who, call.who.sor)  # whether this caller may submit at all comes first
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden")
    return await anyio.to_thread.run_sync(_provide, call, data, limiter=call.ctx.submitting)


def _provide(call: Call, data: dict[str, Any]) -> Response:
    patient: list[str] = []
    try:
        return _provide_checked(call, data, patient)
    except ApiError as exc:
        if patient:  # the refusal is in the patient's audit trail (not in MinLog: a source's submission)
            exc.params.setdefault("patient", patient[0])
        raise


def _provide_checked(call: Call, data: dict[str, Any], patient: list[str]) -> Response:
    ctx, principal = call.ctx, call.who
    tx = Transaction(data)
    prepared: dict[int, Prepared] = {}
    warnings: dict[int, list[str]] = {}
    for index in tx.docrefs:
        replaces, warnings[index] = _replaces(tx.entries[index], index)
        document = tx.document_of[index]
        p = _prepare(call, tx.document_bytes(document), replaces)
        if isinstance(p, Response):
            return p  # the document's findings (422), its refusal audited
        patient.append(p.meta.patient_cpr)
        check_supplied(call, tx, index, p)
        prepared[index] = p
    identifiers = [p.meta.master_identifier for p in prepared.values()]
    if len(set(identifiers)) != len(identifiers):
        raise ApiError(422, "mhd-unique-id-twice", code="duplicate", finding="XDSDocumentUniqueIdError")
    cpr = patient[0]
    check_lists(call, tx, cpr, next(iter(prepared.values())))
    again = _resubmitted(call, tx, prepared)
    if again is not None:
        return again
    try:
        kept = kept_folders(call, tx, cpr)
    except ApiError:
        # A kept Folder is read after the resend was looked for: when the same transaction, sent twice at once,
        # was stored in between (by another worker), the Folder now holds its documents and looks changed. That
        # is the resend, answered as such; anything else is refused as found.
        again = _resubmitted(call, tx, prepared)
        if again is not None:
            return again
        raise
    set_id = str(uuid.uuid4())
    folder_ids = {f: str(uuid.uuid4()) for f in tx.folders}
    updated = {f: (tx.updates[f], str(int(kept[f]["resource"]["meta"]["versionId"]) + 1)) for f in tx.updated}
    items = [Submission(p.meta, p.body, p.content_type, p.standard, AuditRecord(
        "replace" if p.replaces else "submit", principal, patient_cpr=p.meta.patient_cpr, purpose="TREAT",
        detail={"master_identifier": p.meta.master_identifier, "standard": p.standard, "transaction": "ITI-65",
                "submission_set": set_id}), p.replaces) for p in prepared.values()]
    # The SubmissionSet names a new Folder as List/{id}, an updated one by the version this submission made of it.
    refs = {i: f"DocumentReference/{p.meta.id}" for i, p in prepared.items()} | {
        f: f"List/{folder_id}" for f, folder_id in folder_ids.items()} | {
        f: f"List/{rid}/_history/{version}" for f, (rid, version) in updated.items()}
    rows = [_list_row(tx, tx.list_index, set_id, cpr, principal.actor, [refs[i] for i in tx.listed])] + [
        _list_row(tx, f, folder_ids[f], cpr, principal.actor, [refs[i] for i in tx.members[f]]) for f in tx.folders]
    updates = []
    for f, (rid, version) in updated.items():
        new = _list_row(tx, f, rid, cpr, kept[f]["submitter"], [
            refs[e] if isinstance(e, int) else f"DocumentReference/{e}" for e in tx.order[f]])["resource"]
        new["meta"] = {"versionId": version}
        added = [prepared[i].meta.id for i in tx.added[f]]
        updates.append(ListUpdate(rid, kept[f]["resource"]["meta"]["versionId"], new, AuditRecord(
            "update-List", principal, patient_cpr=cpr, purpose="TREAT", documents=added,
            detail={"id": rid, "version": version, "added": added, "entries": len(new["entry"]),
                    "transaction": "ITI-65", "submission_set": set_id})))
    try:
        stored = ctx.store.submit_many(items, principal.sor or "", rows, updates)
    except (ListChanged, Conflict, StaleReplacement) as exc:
        # Found on writing: the same transaction, sent twice at once, was stored by the other copy (answered as its
        # resend), or another submission got there first (refused as found).
        again = _resubmitted(call, tx, prepared)
        if again is not None:
            return again
        raise _beaten(exc) from None
    when = stored[0].docref(base_url(call.request, ctx.settings))["meta"]["lastUpdated"]
    return _answer(call, tx, dict(zip(prepared, stored, strict=True)), set_id, folder_ids, updated, warnings, cpr,
                   when, created=True)


def _beaten(exc: ListChanged | Conflict | StaleReplacement) -> ApiError:
    """The refusal when another submission was stored first: a Folder's version, a document's identifier, the
    replaced document's currency."""
    if isinstance(exc, ListChanged):
        return ApiError(409, "mhd-folder-changed", code="conflict", finding="XDSMetadataVersionError", id=str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, "duplicate-identifier", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                        identifier=str(exc))
    return ApiError(422, "replace-not-current", code="business-rule", id=str(exc))


def check_lists(call: Call, tx: Transaction, cpr: str, p: Prepared) -> None:
    """The Folders and the Patient of the transaction are about the documents' patient (ITI-65 2:3.65.4.1.2.2:
    every List.subject is the patient; a Patient in the Bundle is matched to the patient, here by CPR number);
    each Folder is a FHIR List (what is kept is served again, in JSON and XML)."""
    standard = p.report.standard
    assert standard is not None, "a prepared document's standard is known"
    for f in [*tx.folders, *tx.updated]:
        report = call.ctx.validator.validate_resource(tx.entries[f], BASE_LIST, standard)
        call.ctx.validator.save_plans()
        if not report.valid:
            oo = operation_outcome(report, call.lang)
            raise ApiError(422, "mhd-folder", code="invalid", finding="XDSRegistryMetadataError", index=f,
                           detail="; ".join(i["diagnostics"] for i in oo["issue"] if i["severity"] == "error")[:2000])
        listed = _subject_cpr(tx.entries[f].get("subject"), tx.entries[f], tx, f)
        if listed is None:
            raise ApiError(422, "mhd-list-unknown-patient", code="business-rule", finding="XDSUnknownPatientId",
                           index=f)
        if listed != cpr:
            raise _mismatch(f, "List.subject", listed, cpr, "XDSPatientIdDoesNotMatch", "mhd-patient")
    for i in tx.patients:
        found = _patient_cpr(tx.entries[i])
        if found is None:
            raise ApiError(422, "mhd-patient-entry", code="business-rule", finding="XDSUnknownPatientId", index=i)
        if found != cpr:
            raise _mismatch(i, "Patient.identifier", found, cpr, "XDSPatientIdDoesNotMatch", "mhd-patient")


def kept_folders(call: Call, tx: Transaction, cpr: str) -> dict[int, dict[str, Any]]:
    """The kept Folders the transaction adds documents to (ITI-65: a Folder is created or updated), each as kept:
    the caller's organisation's Folder (not another's, nor a SubmissionSet), the documents' patient's, the same
    uniqueId, and every document it holds still in it (a Document Recipient may require that an updated Folder
    only has entries added, as XDS does: this one does)."""
    ctx, principal = call.ctx, call.who
    kept: dict[int, dict[str, Any]] = {}
    for f in tx.updated:
        rid = tx.updates[f]
        row = ctx.store.clinical_one("List", rid)
        if row is None or row["submitter"] != principal.actor:
            # whether another organisation's Folder (or SubmissionSet) exists is not told: the same answer
            raise ApiError(403, "mhd-folder-not-yours", code="forbidden", finding="UnresolvedReferenceException",
                           index=f, id=rid)
        if row["kind"] != "folder":
            raise ApiError(422, "mhd-folder-not-folder", code="business-rule", finding="XDSRegistryMetadataError",
                           index=f, id=rid)
        if row["patient_cpr"] != cpr:
            raise ApiError(422, "mhd-folder-patient", code="business-rule", finding="XDSPatientIdDoesNotMatch",
                           index=f, id=rid)
        sent = unique_id(tx.entries[f])
        if sent != row["unique_id"]:
            raise ApiError(422, "mhd-folder-unique-id", code="business-rule", finding="XDSMetadataUpdateError",
                           index=f, id=rid, found=str(sent)[:300], expected=str(row["unique_id"]))
        held = [str(_d(_d(e).get("item")).get("reference")).split("/", 1)[1]
                for e in _l(row["resource"].get("entry"))]
        named = [e for e in tx.order[f] if isinstance(e, str)]
        named_set, held_set = set(named), set(held)
        removed = [h for h in held if h not in named_set]
        if removed:  # ITI TF-3 Table 4.2.4.1-2: an update the registry does not support
            raise ApiError(422, "mhd-folder-removed", code="not-supported", finding="XDSMetadataUpdateOperationError",
                           index=f, id=rid, count=len(removed),
                           references=", ".join(f"DocumentReference/{h}" for h in removed[:5])[:400])
        elsewhere = next((e for e in named if e not in held_set), None)
        if elsewhere is not None:  # a document of this transaction, or one the Folder holds already
            raise ApiError(422, "mhd-unresolved", code="not-found", finding="UnresolvedReferenceException", index=f,
                           reference=f"DocumentReference/{elsewhere}")
        kept[f] = row
    return kept


def _list_row(tx: Transaction, index: int, rid: str, cpr: str, submitter: str, refs: list[str]) -> dict[str, Any]:
    """A SubmissionSet or Folder as the server keeps it: its own id, the entries pointing at the stored
    DocumentReferences (and a SubmissionSet's at the stored Folders), the subject as the patient's CPR."""
    lst = json.loads(json.dumps(tx.entries[index]))
    lst["id"] = rid
    lst["meta"] = {"versionId": "1"}
    lst["subject"] = {"identifier": {"system": CPR_SYSTEM, "value": cpr}}
    lst["entry"] = [{"item": {"reference": r}} for r in refs]
    lst.pop("contained", None)
    return {"id": rid, "resource_type": "List", "kind": _list_type(lst), "patient_cpr": cpr, "questionnaire": None,
            "derived_from": None, "submitter": submitter, "resource": lst, "unique_id": unique_id(lst)}


def _answer(call: Call, tx: Transaction, by_index: dict[int, Stored], set_id: str, folder_ids: dict[int, str],
            updated: dict[int, tuple[str, str]], warnings: dict[int, list[str]], cpr: str, when: str, *,
            created: bool) -> Response:
    """The transaction-response: one entry per request entry, in order (ITI-65 2:3.65.4.2.2); an updated Folder
    200 OK at the version made (FHIR update); a resubmission is answered with the same locations, each 200 OK
    (nothing new was stored)."""
    url = base_url(call.request, call.ctx.settings)
    status = "201 Created" if created else "200 OK"
    doc_by_entry = {tx.document_of[i]: s for i, s in by_index.items()}
    answer: list[dict[str, Any]] = []
    for i, resource in enumerate(tx.entries):
        if i in updated:
            rid, version = updated[i]
            answer.append({"response": {"status": "200 OK", "location": f"{url}/fhir/List/{rid}/_history/{version}",
                                        "etag": f'W/"{version}"', "lastModified": when}})
        elif i == tx.list_index or i in folder_ids:
            rid = set_id if i == tx.list_index else folder_ids[i]
            answer.append({"response": {"status": status, "location": f"{url}/fhir/List/{rid}/_history/1",
                                        "etag": 'W/"1"', "lastModified": when}})
        elif i in by_index:
            s = by_index[i]
            docref = s.docref(url)
            entry: dict[str, Any] = {"fullUrl": f"{url}/fhir/DocumentReference/{s.id}", "resource": docref,
                                     "response": {"status": status,
                                                  "location": f"{url}/fhir/DocumentReference/{s.id}/_history/1",
                                                  "etag": _etag(s)["ETag"],
                                                  "lastModified": docref["meta"]["lastUpdated"]}}
            if warnings.get(i):
                entry["response"]["outcome"] = {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "warning", "code": "not-supported",
                    "details": {"coding": [{"system": "urn:kroniker:finding", "code": w}]},
                    "diagnostics": w} for w in warnings[i]]}
            answer.append(entry)
        elif resource["resourceType"] == "Patient":
            # matched, not kept: the server knows patients by CPR number, and Patient/<CPR> is how it names them
            matched = {"severity": "information", "code": "informational",
                       "details": {"coding": [{"system": "urn:kroniker:finding", "code": "patient-matched"}]},
                       "diagnostics": messages.render("srv-mhd-patient-matched", {}, call.lang)}
            answer.append({"response": {"status": "200 OK", "location": f"{url}/fhir/Patient/{cpr}",
                                        "outcome": {"resourceType": "OperationOutcome", "issue": [matched]}}})
        else:
            s = doc_by_entry[i]
            answer.append({"response": {"status": status, "location": f"{url}/fhir/Bundle/{s.id}",
                                        "etag": 'W/"1"'}})
    return fhir({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction-response",
                 "entry": answer})


def _resubmitted(call: Call, tx: Transaction, prepared: dict[int, Prepared]) -> Response | None:
    """A transaction stored already, sent again (its answer lost): answered as the first time, with the same
    locations, nothing stored anew, the resubmission audited. The stored one is found by the SubmissionSet's
    uniqueId, or (without one) as the SubmissionSet holding the same documents. The same uniqueId for other
    content, or from another organisation, is XDSDuplicateUniqueIdInRegistry (409); None: not sent before."""
    ctx, principal = call.ctx, call.who
    sent_id = unique_id(tx.submission_set)
    first = next(iter(prepared.values()))
    if sent_id is not None:
        row = ctx.store.list_by_unique_id(sent_id)
    else:
        same = ctx.store.find_identical(first.meta.master_identifier, first.body)
        row = ctx.store.submission_set_holding(first.meta.patient_cpr, same.id) if same is not None else None
        if row is not None and row["unique_id"] is not None:
            row = None  # a SubmissionSet with a uniqueId: this one, without, is another submission
    if row is None:
        return None
    duplicate = ApiError(409, "duplicate-submission-set", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                         identifier=str(sent_id or first.meta.master_identifier)[:300])
    stored_set = row["resource"]
    if row["kind"] != "submissionset":
        raise duplicate  # a Folder's uniqueId
    refs = [_d(_d(e).get("item")).get("reference") for e in _l(stored_set.get("entry"))]
    docs = {s.row["master_identifier"]: s for s in (ctx.store.get(r.split("/", 1)[1]) for r in refs
                                                    if isinstance(r, str) and r.startswith("DocumentReference/"))
            if s is not None}
    sent = {p.meta.master_identifier: hashlib.sha256(p.body).hexdigest() for p in prepared.values()}
    if {m: s.row["content_sha256"] for m, s in docs.items()} != sent \
            or any(s.row["submitter_sor"] != (principal.sor or "") for s in docs.values()):
        raise duplicate
    # The Folders, in the order the SubmissionSet names them: the same uniqueIds, holding the same documents (and
    # perhaps more, added since); an updated one by the version this submission made of it.
    by_id = {s.id: m for m, s in docs.items()}
    stored_folders = [r.split("/") for r in refs if isinstance(r, str) and r.startswith("List/")]
    sent_folders = [i for i in tx.listed if i in tx.members or i in tx.added]
    if len(stored_folders) != len(sent_folders):
        raise duplicate
    folder_ids: dict[int, str] = {}
    updated: dict[int, tuple[str, str]] = {}
    for parts, f in zip(stored_folders, sent_folders, strict=True):
        kept = ctx.store.clinical_one("List", parts[1])
        # the documents of this submission it holds (others, added by later submissions, are no matter)
        held = {by_id.get(str(_d(_d(e).get("item")).get("reference")).rsplit("/", 1)[-1], "")
                for e in _l(_d(kept)["resource"].get("entry"))} - {""} if kept else set()
        members = tx.added[f] if f in tx.added else tx.members[f]
        if kept is None or kept["unique_id"] != unique_id(tx.entries[f]) or {
                prepared[i].meta.master_identifier for i in members} != held \
                or (len(parts) == 4) != (f in tx.added) or (f in tx.added and parts[1] != tx.updates[f]):
            raise duplicate
        if f in tx.added:
            updated[f] = (parts[1], parts[3])
        else:
            folder_ids[f] = parts[1]
    by_index = {i: docs[p.meta.master_identifier] for i, p in prepared.items()}
    ctx.store.record_all([AuditRecord(
        "submit", principal, patient_cpr=row["patient_cpr"], purpose="TREAT", documents=[s.id],
        content_sha256=s.row["content_sha256"],
        detail={"master_identifier": s.row["master_identifier"], "standard": s.row["standard"],
                "transaction": "ITI-65", "submission_set": row["id"], "idempotent": True})
        for s in by_index.values()])
    warnings = {i: _replaces(tx.entries[i], i)[1] for i in tx.docrefs}
    return _answer(call, tx, by_index, row["id"], folder_ids, updated, warnings, row["patient_cpr"],
                   row["resource"]["meta"]["lastUpdated"], created=False)


def _patient_cpr(patient: dict[str, Any]) -> str | None:
    return next((i["value"] for i in _l(patient.get("identifier")) if isinstance(i, dict)
                 and i.get("system") == CPR_SYSTEM and isinstance(i.get("value"), str)), None)


async def read_list(call: Call) -> Response:
    return await run_in_threadpool(_read_list, call)


def _read_list(call: Call) -> Response:
    """GET [base]/List/{id}: a SubmissionSet or a Folder, for whoever may read all of its documents (may_read);
    a Folder is the patient's, as its documents are."""
    ctx, principal = call.ctx, call.who
    rid = inputs.resource_id(call.request.path_params["id"], "unknown-resource")
    row = ctx.store.clinical_one("List", rid)
    not_here = ApiError(404, "unknown-resource", code="not-found", type="List", id=rid)
    if row is None:
        raise not_here
    patient = row["patient_cpr"]
    try:
        decision = _read_decision(ctx, call.rule, principal, patient, _override(call))
    except ApiError as exc:
        if exc.key == "citizen-other-patient":  # whether it exists is itself health data
            raise not_here from None
        raise
    resource = row["resource"]
    ids = [e["item"]["reference"].split("/", 1)[1] for e in resource.get("entry", [])
           if e["item"]["reference"].startswith("DocumentReference/")]  # a SubmissionSet names its Folders too
    docs = [ctx.store.get(i) for i in ids]
    if decision.nothing or not all(d is not None and decision.visible(d.info) for d in docs):
        _record(ctx, AuditRecord("read-List", principal, outcome="4", patient_cpr=patient, reason="blocked",
                                 minlog=False, detail={"id": rid}))
        raise not_here
    _record(ctx, AuditRecord("read-List", principal, patient_cpr=patient, documents=ids,
                             purpose="PATRQT" if principal.role == "citizen" else "TREAT",
                             override=decision.override, minlog=decision.minlog, detail={"id": rid}))
    return fhir(resource)  # its meta as kept: a Folder documents were added to is at a later version


# -- PUT [base]/Bundle/{id} --------------------------------------------------------------------------------

async def put_document(call: Call) -> Response:
    decision = call.rule(call.who, call.who.sor)
    if not decision.allowed:
        raise ApiError(decision.status, decision.reason, code="forbidden")
    content_type = inputs.media_type(call.request.headers.get("content-type")) or FHIR_JSON
    if content_type not in DOCUMENT_MEDIA:
        raise ApiError(415, "media-type", code="not-supported", found=content_type)
    return await anyio.to_thread.run_sync(_put, call, limiter=call.ctx.submitting)


def _put(call: Call) -> Response:
    ctx, principal = call.ctx, call.who
    doc_id = call.request.path_params["id"]
    try:
        data = parse(call.body, ctx.validator.limits).data
        found = data.get("id") if isinstance(data, dict) else None
    except Unreadable:
        found = doc_id  # not a readable document: _prepare says what is wrong with it
    if found != doc_id or not inputs.ID.fullmatch(doc_id):
        raise ApiError(400, "put-id", code="invalid", id=doc_id[:64], found=str(found)[:64])
    sha = hashlib.sha256(call.body).hexdigest()
    existing = ctx.store.get(doc_id)
    if existing is not None and existing.row["content_sha256"] != sha:
        raise ApiError(409, "document-immutable", code="conflict", id=doc_id)
    p = _prepare(call, call.body, None, doc_id)
    if isinstance(p, Response):
        return p
    rec = AuditRecord("submit", principal, patient_cpr=p.meta.patient_cpr, purpose="TREAT",
                      detail={"master_identifier": p.meta.master_identifier, "standard": p.standard,
                              "interaction": "update"})
    try:
        stored, created = ctx.store.submit(p.meta, p.body, p.content_type, p.standard, principal.sor or "", rec)
    except Conflict:
        raise ApiError(409, "duplicate-identifier", code="duplicate", finding="XDSDuplicateUniqueIdInRegistry",
                       identifier=p.meta.master_identifier) from None
    if stored.id != doc_id:  # these bytes are stored already, under the id a POST gave them
        raise ApiError(409, "document-immutable", code="conflict", id=doc_id)
    url = base_url(call.request, ctx.settings)
    headers = {"Location": f"{url}/fhir/Bundle/{doc_id}", **_etag(stored)}
    return formats.document(stored.row["content"], stored.row["content_type"], call.wanted, ctx.validator.limits,
                            headers, 201 if created else 200)  # the document as stored, in the asked format

