"""The XDS metadata DDS registers for a document, derived from the MedCom document as a DocumentReference
(spec/medcom-standards.md §14; the values per standard are data in profiles/rules/xds-metadata.json)."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from kroniker.validators.identifiers import CPR_SYSTEM as CPR
from kroniker.validators.identifiers import SOR_SYSTEM as SOR
from kroniker.validators.identifiers import parse_instant
from kroniker.validators.references import BundleIndex


@cache
def xds_config() -> dict[str, Any]:
    text = resources.files("kroniker.profiles").joinpath("rules/xds-metadata.json").read_text(encoding="utf-8")
    return json.loads(text)["standards"]


class MetadataError(Exception):
    """The document lacks what the metadata needs (a validated document never does)."""


@dataclass
class DocumentMeta:
    """A document's registry entry: the searchable columns and the DocumentReference."""

    id: str
    master_identifier: str
    patient_cpr: str
    type_system: str
    type_code: str
    category_code: str | None
    format_code: str | None
    facility_code: str | None
    practice_code: str | None
    confidentiality: str | None
    language: str | None
    author_org_sor: str
    author_org_name: str | None
    author_person: str | None
    title: str | None
    service_start: dt.datetime | None
    service_end: dt.datetime | None
    doc_date: dt.datetime | None
    events: list[tuple[str | None, str]] = field(default_factory=list)
    docref: dict[str, Any] = field(default_factory=dict)
    profile: str = ""
    drafts: list[str] = field(default_factory=list)


def instant(value: Any) -> dt.datetime | None:
    """A FHIR dateTime as naive UTC (XDS keeps UTC to the second); None for a date without time."""
    t = parse_instant(value)
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t is not None else None


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def _person_name(resource: dict[str, Any] | None) -> str | None:
    if not resource:
        return None
    for name in resource.get("name") or []:
        if isinstance(name, dict):
            given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
            return " ".join(x for x in (given, name.get("family")) if isinstance(x, str) and x) or None
    return None


def derive(bundle: dict[str, Any], standard: str, version: str, content_type: str, content: bytes,
           doc_id: str | None = None) -> DocumentMeta:
    """The registry entry for a valid MedCom document of a known standard."""
    cfg = xds_config().get(standard)
    if cfg is None:
        raise MetadataError(f"kroniker has no XDS metadata mapping for {standard}")
    # The one resolver the validator used: the patient and author filed are the ones the Composition
    # references by FHIR's Bundle rules, never the first entry that happens to have the same type and id.
    index = BundleIndex.of(bundle)
    comp_entry = index.entries[1] if len(index.entries) > 1 else None
    if comp_entry is None or comp_entry.index != 0 or comp_entry.resource.get("resourceType") != "Composition":
        raise MetadataError("the document's first entry is not its Composition")
    if index.duplicate_ids():
        raise MetadataError("two entries of the document have the same resource type and id")
    comp = comp_entry.resource

    def resolve(ref: Any) -> dict[str, Any] | None:
        target = index.resolve(ref, comp_entry)
        return target.resource if target is not None else None

    patient = resolve(comp.get("subject"))
    if patient is not None and patient.get("resourceType") != "Patient":
        patient = None
    cpr = _identifier(patient, CPR) if patient else None
    if not cpr:
        raise MetadataError("the document's subject has no CPR number")
    authors = [resolve(a) for a in comp.get("author") or []]
    org = next((a for a in authors if a and a.get("resourceType") == "Organization"), None)
    person = next((a for a in authors if a and a.get("resourceType") == "Practitioner"), None)
    sor = _identifier(org, SOR) if org else None
    if not sor:
        raise MetadataError("the document's author institution has no SOR number")
    type_coding = ((comp.get("type") or {}).get("coding") or [{}])[0]
    events = [(c.get("system"), c["code"]) for ev in comp.get("event") or [] for cc in ev.get("code") or []
              for c in cc.get("coding") or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]
    period = ((comp.get("event") or [{}])[0] or {}).get("period") or {}
    major_minor = _major_minor(version)
    fmt = cfg["format"].get(major_minor) or next(iter(cfg["format"].values()))
    master = (comp.get("identifier") or {}).get("value") or (bundle.get("identifier") or {}).get("value")
    if not isinstance(master, str):
        raise MetadataError("the document has no identifier (Composition.identifier or Bundle.identifier)")
    doc_id = doc_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"kroniker:documentreference:{master}"))
    meta = DocumentMeta(
        id=doc_id, master_identifier=master, patient_cpr=cpr,
        type_system=cfg.get("type", {}).get("system") or type_coding.get("system", ""),
        type_code=type_coding.get("code", ""),
        category_code=cfg["class"]["code"], format_code=fmt["code"],
        facility_code=cfg["facility"]["code"], practice_code=cfg["practice_setting"]["code"],
        confidentiality=comp.get("confidentiality"), language=comp.get("language"),
        author_org_sor=sor, author_org_name=org.get("name") if org else None,
        author_person=_person_name(person), title=comp.get("title"),
        service_start=instant(period.get("start")), service_end=instant(period.get("end")),
        doc_date=instant(comp.get("date")), events=events, profile=cfg["profile"], drafts=list(cfg.get("draft", [])),
    )
    meta.docref = _document_reference(meta, cfg, fmt, bundle, comp, patient, org, person, content_type, content)
    return meta


def _major_minor(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2])


def _contained(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    # The document's own resource, not a copy (narrative included, as MedCom's profiles want it): the server
    # tells the validator these were validated already, with the document, against the same profiles.
    return resource


def _document_reference(meta: DocumentMeta, cfg: dict[str, Any], fmt: dict[str, Any], bundle: dict[str, Any],
                        comp: dict[str, Any], patient: dict[str, Any] | None, org: dict[str, Any] | None,
                        person: dict[str, Any] | None, content_type: str, content: bytes) -> dict[str, Any]:
    contained = [r for r in (_contained(patient), _contained(org), _contained(person)) if r]
    type_coding = dict(((comp.get("type") or {}).get("coding") or [{}])[0])
    if "type" in cfg:
        type_coding = dict(cfg["type"])
    creation = bundle.get("timestamp")
    author = [{"reference": f"#{org['id']}"}] if org else []
    if person:
        author.append({"reference": f"#{person['id']}"})
    attachment: dict[str, Any] = {
        "contentType": content_type,
        "language": comp.get("language") or "da",
        "url": "",  # the server's own retrieve URL, filled in when it is served
        "title": comp.get("title"),
        "creation": creation,
    }
    context: dict[str, Any] = {
        "facilityType": {"coding": [dict(cfg["facility"])]},
        "practiceSetting": {"coding": [dict(cfg["practice_setting"])]},
        "sourcePatientInfo": {"reference": f"#{patient['id']}",
                              "identifier": {"system": CPR, "value": meta.patient_cpr}} if patient else {},
    }
    period = {k: v for k, v in (((comp.get("event") or [{}])[0] or {}).get("period") or {}).items()
              if k in ("start", "end")}
    if period:
        context["period"] = period
    if meta.events:
        context["event"] = [{"coding": [{"system": s, "code": c} if s else {"code": c}]} for s, c in meta.events]
    docref: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": meta.id,
        "meta": {"profile": [cfg["profile"]]},
        "contained": contained,
        "extension": [
            {"url": "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-homecommunityid-extension",
             "valueCoding": dict(cfg["home_community"])},
            {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-DocumentReference.version"
             if cfg["profile"].endswith("contained-documentreference")
             else "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-version-id-extension",
             "valueString": cfg["version_id"]},
        ],
        "masterIdentifier": {"use": "usual", "system": "urn:ietf:rfc:3986", "value": meta.master_identifier},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986",
                        "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'entry:' + meta.master_identifier)}"}],
        "status": "current",
        "type": {"coding": [type_coding]},
        "category": [{"coding": [dict(cfg["class"])]}],
        "subject": {"reference": f"#{patient['id']}"} if patient else {},
        "author": author,
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                        "code": meta.confidentiality or "N"}]}],
        "content": [{"attachment": attachment, "format": dict(fmt)}],
        "context": context,
    }
    if cfg["profile"].endswith("conditionlist-documentreference"):
        # DocumentReference 1.0.1 (ConditionList) writes codes with OID systems and omits what 2.x adds.
        docref["masterIdentifier"] = {"value": meta.master_identifier}
        docref["identifier"] = [{"value": docref["identifier"][0]["value"]}]
        docref["securityLabel"] = [{"coding": [{"code": meta.confidentiality or "N"}]}]
    if content:
        attachment["size"] = len(content)
        attachment["hash"] = _sha1_b64(content)
    docref["text"] = {"status": "extensions", "div": _narrative(meta, cfg)}
    return _ordered(docref)


def _sha1_b64(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")  # FHIR: base64 of SHA-1 (MHD)


def _narrative(meta: DocumentMeta, cfg: dict[str, Any]) -> str:
    rows = [("id", meta.id), ("Patient (CPR)", meta.patient_cpr), ("Titel", meta.title or ""),
            ("Type", f"{meta.type_system} {meta.type_code}"), ("Format", meta.format_code or ""),
            ("Forfatter", f"{meta.author_org_name or ''} (SOR {meta.author_org_sor})"),
            ("Fortrolighed", meta.confidentiality or "")]
    if meta.drafts:
        rows.append(("Udkast", "værdier fra MedComs udkast til XDS-metadata: " + ", ".join(meta.drafts)))
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>DocumentReference {html.escape(meta.id)}</p>' \
           f"<table>{cells}</table></div>"


_ORDER = ["resourceType", "id", "meta", "text", "contained", "extension", "masterIdentifier", "identifier",
          "status", "type", "category", "subject", "author", "relatesTo", "securityLabel", "content", "context"]


def _ordered(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in _ORDER if k in r} | {k: v for k, v in r.items() if k not in _ORDER}
