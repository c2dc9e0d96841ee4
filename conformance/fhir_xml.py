"""FHIR JSON → FHIR XML for tests, written from the R4 specification, not from kroniker's code.

The element order below is transcribed from http://hl7.org/fhir/R4 (resource and datatype pages) for the
types our documents and MedCom's examples use, so that the XSD kroniker generates from fhir.resources is
held to the specification, not to itself. A key the table does not know raises: a test must not pass
on a document this writer put in an order it made up.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import quoteattr

FHIR_NS = "http://hl7.org/fhir"

_RESOURCE = ["id", "meta", "implicitRules", "language"]
_DOMAIN = [*_RESOURCE, "text", "contained", "extension", "modifierExtension"]
_BACKBONE = ["extension", "modifierExtension"]
_ELEMENT = ["extension"]

# type or backbone path → R4 child order; `x[x]` is a choice element.
ORDER: dict[str, list[str]] = {
    "Bundle": [*_RESOURCE, "identifier", "type", "timestamp", "total", "link", "entry", "signature"],
    "Bundle.entry": [*_BACKBONE, "link", "fullUrl", "resource", "search", "request", "response"],
    "Composition": [*_DOMAIN, "identifier", "status", "type", "category", "subject", "encounter", "date", "author",
                    "title", "confidentiality", "attester", "custodian", "relatesTo", "event", "section"],
    "Composition.attester": [*_BACKBONE, "mode", "time", "party"],
    "Composition.event": [*_BACKBONE, "code", "period", "detail"],
    "Composition.section": [*_BACKBONE, "title", "code", "author", "focus", "text", "mode", "orderedBy", "entry",
                            "emptyReason", "section"],
    "Condition": [*_DOMAIN, "identifier", "clinicalStatus", "verificationStatus", "category", "severity", "code",
                  "bodySite", "subject", "encounter", "onset[x]", "abatement[x]", "recordedDate", "recorder",
                  "asserter", "stage", "evidence", "note"],
    "DocumentReference": [*_DOMAIN, "masterIdentifier", "identifier", "status", "docStatus", "type", "category",
                          "subject", "date", "author", "authenticator", "custodian", "relatesTo", "description",
                          "securityLabel", "content", "context"],
    "DocumentReference.content": [*_BACKBONE, "attachment", "format"],
    "DocumentReference.context": [*_BACKBONE, "encounter", "event", "period", "facilityType", "practiceSetting",
                                  "sourcePatientInfo", "related"],
    "Observation": [*_DOMAIN, "identifier", "basedOn", "partOf", "status", "category", "code", "subject", "focus",
                    "encounter", "effective[x]", "issued", "performer", "value[x]", "dataAbsentReason",
                    "interpretation", "note", "bodySite", "method", "specimen", "device", "referenceRange",
                    "hasMember", "derivedFrom", "component"],
    "Organization": [*_DOMAIN, "identifier", "active", "type", "name", "alias", "telecom", "address", "partOf",
                     "contact", "endpoint"],
    "Patient": [*_DOMAIN, "identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]", "address",
                "maritalStatus", "multipleBirth[x]", "photo", "contact", "communication", "generalPractitioner",
                "managingOrganization", "link"],
    "Practitioner": [*_DOMAIN, "identifier", "active", "name", "telecom", "address", "gender", "birthDate", "photo",
                     "qualification", "communication"],
    "PractitionerRole": [*_DOMAIN, "identifier", "active", "period", "practitioner", "organization", "code",
                         "specialty", "location", "healthcareService", "telecom", "availableTime", "notAvailable",
                         "availabilityExceptions", "endpoint"],
    "Element": _ELEMENT,
    "Annotation": [*_ELEMENT, "author[x]", "time", "text"],
    "Attachment": [*_ELEMENT, "contentType", "language", "data", "url", "size", "hash", "title", "creation"],
    "CodeableConcept": [*_ELEMENT, "coding", "text"],
    "Coding": [*_ELEMENT, "system", "version", "code", "display", "userSelected"],
    "Extension": [*_ELEMENT, "value[x]"],
    "HumanName": [*_ELEMENT, "use", "text", "family", "given", "prefix", "suffix", "period"],
    "Identifier": [*_ELEMENT, "use", "type", "system", "value", "period", "assigner"],
    "Meta": [*_ELEMENT, "versionId", "lastUpdated", "source", "profile", "security", "tag"],
    "Narrative": [*_ELEMENT, "status", "div"],
    "Period": [*_ELEMENT, "start", "end"],
    "Reference": [*_ELEMENT, "reference", "type", "identifier", "display"],
}

# element (by the type or backbone that holds it) → the type or backbone path of its value, where it is complex.
COMPLEX: dict[str, str] = {
    "meta": "Meta", "text": "Narrative", "extension": "Extension", "modifierExtension": "Extension",
    "identifier": "Identifier", "masterIdentifier": "Identifier", "type": "CodeableConcept",
    "category": "CodeableConcept", "code": "CodeableConcept", "coding": "Coding", "subject": "Reference",
    "author": "Reference", "attester": "Composition.attester", "party": "Reference", "event": "Composition.event",
    "period": "Period", "section": "Composition.section", "entry": "Reference", "clinicalStatus": "CodeableConcept",
    "verificationStatus": "CodeableConcept", "bodySite": "CodeableConcept", "note": "Annotation",
    "name": "HumanName", "performer": "Reference", "practitioner": "Reference", "organization": "Reference",
    "authenticator": "Reference", "securityLabel": "CodeableConcept", "content": "DocumentReference.content",
    "attachment": "Attachment", "format": "Coding", "context": "DocumentReference.context",
    "facilityType": "CodeableConcept", "practiceSetting": "CodeableConcept", "sourcePatientInfo": "Reference",
    "assigner": "Reference", "security": "Coding", "tag": "Coding", "custodian": "Reference",
    "encounter": "Reference",
}
_OVERRIDES = {("Bundle", "entry"): "Bundle.entry", ("Composition.section", "text"): "Narrative",
              ("Bundle", "type"): "", ("Reference", "type"): "", ("Composition.attester", "mode"): "",
              ("HumanName", "text"): "", ("Annotation", "text"): "", ("Attachment", "title"): "",
              ("Narrative", "status"): "", ("Composition.section", "title"): ""}


def to_xml(resource: dict[str, Any]) -> str:
    """A FHIR JSON resource as FHIR XML text, one element per line (the narrative's div as it is)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    _resource(resource, lines, 0, f' xmlns="{FHIR_NS}"')
    return "\n".join(lines) + "\n"


def _resource(res: dict[str, Any], out: list[str], depth: int, xmlns: str = "") -> None:
    rtype = res["resourceType"]
    out.append(f"{'  ' * depth}<{rtype}{xmlns}>")
    _fill(out, depth + 1, rtype, {k: v for k, v in res.items() if k != "resourceType"}, is_resource=True)
    out.append(f"{'  ' * depth}</{rtype}>")


def _slot(order: list[str], key: str) -> int:
    for i, name in enumerate(order):
        if name == key or (name.endswith("[x]") and key.startswith(name[:-3]) and key[len(name) - 3:][:1].isupper()):
            return i
    raise KeyError(key)


def _attrs(obj: dict[str, Any], type_path: str, is_resource: bool) -> str:
    out = ""
    if not is_resource and "id" in obj:
        out += f" id={quoteattr(obj['id'])}"
    if type_path == "Extension":
        out += f" url={quoteattr(obj['url'])}"
    return out


def _fill(out: list[str], depth: int, type_path: str, obj: dict[str, Any], *, is_resource: bool = False) -> None:
    order = ORDER[type_path]
    keys = {k.lstrip("_") for k in obj} - ({"url"} if type_path == "Extension" else set())
    if not is_resource:
        keys.discard("id")
    for key in sorted(keys, key=lambda k: _slot(order, k)):
        values, extras = obj.get(key), obj.get("_" + key)
        many = isinstance(values, list) or isinstance(extras, list)
        vals = list(values) if isinstance(values, list) else [] if many else [values]
        exts = list(extras) if isinstance(extras, list) else [] if many else [extras]
        n = max(len(vals), len(exts))
        vals += [None] * (n - len(vals))
        exts += [None] * (n - len(exts))
        for v, x in zip(vals, exts, strict=True):
            _element(out, depth, type_path, key, v, x)


def _element(out: list[str], depth: int, type_path: str, key: str, value: Any, extra: dict[str, Any] | None) -> None:
    pad = "  " * depth
    if key == "div":
        out.append(pad + value)
        return
    if isinstance(value, dict) and "resourceType" in value:
        out.append(f"{pad}<{key}>")
        _resource(value, out, depth + 1)
        out.append(f"{pad}</{key}>")
        return
    if isinstance(value, dict):
        complex_type = _complex_type(type_path, key)
        out.append(f"{pad}<{key}{_attrs(value, complex_type, False)}>")
        _fill(out, depth + 1, complex_type, value)
        out.append(f"{pad}</{key}>")
        return
    attrs = "" if value is None else f" value={quoteattr(value if isinstance(value, str) else json.dumps(value))}"
    extra = extra or {}
    if "id" in extra:
        attrs = f" id={quoteattr(extra['id'])}" + attrs
    exts = extra.get("extension", [])
    if not exts:
        out.append(f"{pad}<{key}{attrs}/>")
        return
    out.append(f"{pad}<{key}{attrs}>")
    for ext in exts:
        _element(out, depth + 1, "Element", "extension", ext, None)
    out.append(f"{pad}</{key}>")


def _complex_type(type_path: str, key: str) -> str:
    stem = next((n[:-3] for n in ORDER[type_path] if n.endswith("[x]") and key.startswith(n[:-3])), None)
    if stem is not None:
        return key[len(stem):]  # valueCodeableConcept → CodeableConcept
    hit = _OVERRIDES.get((type_path, key))
    return hit if hit else COMPLEX[key]
