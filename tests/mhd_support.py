"""An MHD ITI-65 Provide Document Bundle as a vendor writes one (IHE MHD 4.2, 2:3.65.4.1): the SubmissionSet List,
a DocumentReference per document written from the document (MedCom's DocumentReference for Shared Notes, its codes
from profiles/rules/xds-metadata.json, the XDS metadata rules' data) and the document itself, as a Binary or as the
document Bundle, all referencing each other by urn:uuid fullUrls."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from importlib import resources
from typing import Any

from kroniker.conformance.documents import encode

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
STANDARDS = json.loads(resources.files("kroniker.profiles").joinpath("rules/xds-metadata.json").read_text("utf-8"))[
    "standards"]
NOTES, CONDITIONLIST = STANDARDS["medcom.fhir.dk.notes"], STANDARDS["medcom.fhir.dk.conditionlist"]


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _entry(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == kind)


def docref_for(doc: dict[str, Any], document_url: str, content: bytes | None = None) -> dict[str, Any]:
    """The DocumentReference a vendor writes for a Shared Note (MedCom's contained DocumentReference profile)."""
    comp = _entry(doc, "Composition")
    patient, org, gp = (copy.deepcopy(_entry(doc, k)) for k in ("Patient", "Organization", "Practitioner"))
    cpr = next(i["value"] for i in patient["identifier"] if i["system"] == CPR_SYSTEM)
    attachment: dict[str, Any] = {"contentType": "application/fhir+json", "language": "da", "url": document_url,
                                  "title": comp["title"], "creation": doc["timestamp"]}
    if content is not None:
        attachment["size"] = len(content)
        attachment["hash"] = base64.b64encode(hashlib.sha1(content).digest()).decode("ascii")
    ref_id = str(uuid.uuid4())
    return copy.deepcopy({  # nothing shared with the rules' data, which tests alter in their copy
        "resourceType": "DocumentReference",
        "id": ref_id,  # MedCom's profile wants an id and a narrative
        "meta": {"profile": [NOTES["profile"]]},
        "text": {"status": "generated",
                 "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{comp["title"]} ({cpr})</p></div>'},
        "contained": [patient, org, gp],
        "extension": [
            {"url": "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-homecommunityid-extension",
             "valueCoding": NOTES["home_community"]},
            {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-DocumentReference.version",
             "valueString": NOTES["version_id"]}],
        "masterIdentifier": {"use": "usual", "system": "urn:ietf:rfc:3986", "value": comp["identifier"]["value"]},
        "identifier": [{"use": "official", "system": "urn:ietf:rfc:3986", "value": urn()}],
        "status": "current",
        "type": comp["type"],
        "category": [{"coding": [NOTES["class"]]}],
        "subject": {"reference": f"#{patient['id']}"},
        "author": [{"reference": f"#{org['id']}"}, {"reference": f"#{gp['id']}"}],
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": comp.get("confidentiality", "N")}]}],
        "content": [{"attachment": attachment, "format": NOTES["format"]["1.0"]}],
        "context": {
            "facilityType": {"coding": [NOTES["facility"]]},
            "practiceSetting": {"coding": [NOTES["practice_setting"]]},
            "sourcePatientInfo": {"reference": f"#{patient['id']}",
                                  "identifier": {"system": CPR_SYSTEM, "value": cpr}},
            "period": {"start": comp["event"][0]["period"]["start"]}},
    })


def card_docref_for(doc: dict[str, Any], document_url: str) -> dict[str, Any]:
    """The DocumentReference a vendor writes for a diagnosis card (MedCom's ConditionList DocumentReference 1.0.1,
    which writes its codes with OID systems)."""
    comp = _entry(doc, "Composition")
    patient, org = (copy.deepcopy(_entry(doc, k)) for k in ("Patient", "Organization"))
    cpr = next(i["value"] for i in patient["identifier"] if i["system"] == CPR_SYSTEM)
    cfg = copy.deepcopy(CONDITIONLIST)  # nothing shared with the rules' data, which tests alter in their copy
    return {
        "resourceType": "DocumentReference", "id": str(uuid.uuid4()),
        "meta": {"profile": [cfg["profile"]]},
        "text": {"status": "generated",
                 "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{comp["title"]} ({cpr})</p></div>'},
        "contained": [patient, org],
        "extension": [
            {"url": "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-homecommunityid-extension",
             "valueCoding": cfg["home_community"]},
            {"url": "http://medcomfhir.dk/ig/document/StructureDefinition/medcom-document-version-id-extension",
             "valueString": cfg["version_id"]}],
        "masterIdentifier": {"value": doc["identifier"]["value"]},  # the card's Composition has no identifier
        "identifier": [{"value": urn()}],
        "status": "current",
        "type": {"coding": [cfg["type"]]},
        "category": [{"coding": [cfg["class"]]}],
        "subject": {"reference": f"#{patient['id']}"},
        "author": [{"reference": f"#{org['id']}"}],
        "securityLabel": [{"coding": [{"code": comp.get("confidentiality", "N")}]}],
        "content": [{"attachment": {"contentType": "application/fhir+json", "language": "da", "url": document_url,
                                    "title": comp["title"], "creation": doc["timestamp"]},
                     "format": cfg["format"]["1.0"]}],
        "context": {"facilityType": {"coding": [cfg["facility"]]},
                    "practiceSetting": {"coding": [cfg["practice_setting"]]},
                    "sourcePatientInfo": {"reference": f"#{patient['id']}",
                                          "identifier": {"system": CPR_SYSTEM, "value": cpr}}},
    }


def provide_bundle(*docs: dict[str, Any], binary: bool = True, replaces: str | None = None) -> dict[str, Any]:
    """The ITI-65 transaction for the documents (one patient): List, then per document its DocumentReference and
    the document (a Binary of its bytes, or the Bundle itself)."""
    patient = _entry(docs[0], "Patient")
    cpr = next(i["value"] for i in patient["identifier"] if i["system"] == CPR_SYSTEM)
    list_url = urn()
    entries: list[dict[str, Any]] = []
    refs = []
    for doc in docs:
        doc_url, ref_url = urn(), urn()
        content = encode(doc)
        if binary:
            document = {"resourceType": "Binary", "contentType": "application/fhir+json",
                        "data": base64.b64encode(content).decode("ascii")}
        else:
            document = doc
        is_card = _entry(doc, "Composition")["type"]["coding"][0]["code"] == CONDITIONLIST["type"]["code"]
        docref = card_docref_for(doc, doc_url) if is_card else docref_for(doc, doc_url, content if binary else None)
        if replaces:
            docref["relatesTo"] = [{"code": "replaces", "target": {"reference": f"DocumentReference/{replaces}"}}]
        entries += [{"fullUrl": ref_url, "resource": docref, "request": {"method": "POST", "url": "DocumentReference"}},
                    {"fullUrl": doc_url, "resource": document,
                     "request": {"method": "POST", "url": document["resourceType"]}}]
        refs.append(ref_url)
    submission_set = {
        "resourceType": "List", "status": "current", "mode": "working",
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": urn()}],
        "code": {"coding": [{"system": LIST_TYPES, "code": "submissionset"}]},
        "subject": {"identifier": {"system": CPR_SYSTEM, "value": cpr}},
        "date": docs[0]["timestamp"],
        "entry": [{"item": {"reference": r}} for r in refs],
    }
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction",
            "meta": {"profile": ["https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.ProvideBundle"]},
            "entry": [{"fullUrl": list_url, "resource": submission_set, "request": {"method": "POST", "url": "List"}},
                      *entries]}


def docrefs(tx: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in tx["entry"] if e["resource"]["resourceType"] == "DocumentReference"]


def submission_set(tx: dict[str, Any]) -> dict[str, Any]:
    return tx["entry"][0]["resource"]


def add_folder(tx: dict[str, Any], *, listed: bool = True) -> dict[str, Any]:
    """A new Folder (MHD's Folder List: code folder, mode working) holding every DocumentReference of the
    transaction, posted after the SubmissionSet and named by it (its HasMember, in XDS's words); the Folder."""
    cpr = submission_set(tx)["subject"]["identifier"]["value"]
    refs = [e["fullUrl"] for e in tx["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    folder = {"resourceType": "List", "status": "current", "mode": "working", "title": "Forløb",
              "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": urn()}],
              "code": {"coding": [{"system": LIST_TYPES, "code": "folder"}]},
              "subject": {"identifier": {"system": CPR_SYSTEM, "value": cpr}},
              "entry": [{"item": {"reference": r}} for r in refs]}
    url = urn()
    tx["entry"].insert(1, {"fullUrl": url, "resource": folder, "request": {"method": "POST", "url": "List"}})
    if listed:
        submission_set(tx)["entry"].append({"item": {"reference": url}})
    return folder


def add_patient(tx: dict[str, Any], cpr: str, *, method: str = "POST") -> str:
    """The patient as a Patient entry of the transaction (ITI-65's Patient slice), named by CPR number; its fullUrl."""
    url = urn()
    patient = {"resourceType": "Patient", "identifier": [{"system": CPR_SYSTEM, "value": cpr}],
               "name": [{"family": "Patient"}]}
    request = {"method": method, "url": "Patient" if method == "POST" else f"Patient/{uuid.uuid4()}"}
    tx["entry"].append({"fullUrl": url, "resource": patient, "request": request})
    return url


def update_folder(tx: dict[str, Any], folder_id: str, kept: dict[str, Any], *, listed: bool = True) -> dict[str, Any]:
    """The kept Folder List/{folder_id} updated in the transaction (ITI-65's PUT List, MHDprovideFolderActions):
    the Folder as kept, its entries those it has and every DocumentReference of the transaction (as IHE's example
    Bundle/ex-ProvideDocumentBundle-addToFolder), named by the SubmissionSet; the Folder sent."""
    refs = [e["fullUrl"] for e in tx["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    folder = copy.deepcopy(kept)
    folder.pop("meta", None)
    folder["entry"] = [*kept["entry"], *({"item": {"reference": r}} for r in refs)]
    url = urn()
    request = {"method": "PUT", "url": f"List/{folder_id}"}
    tx["entry"].insert(1, {"fullUrl": url, "resource": folder, "request": request})
    if listed:
        submission_set(tx)["entry"].append({"item": {"reference": url}})
    return folder
