"""MHD ITI-65 Provide Document Bundle (IHE MHD 4.2, 2:3.65) and PUT [base]/Bundle/{id}, over HTTP, on SQLite and
PostgreSQL: the SubmissionSet, its DocumentReferences and their documents (Binary or the Bundle itself) stored
all or nothing, the vendor's DocumentReference checked against the document and MedCom's profile with the XDS
error codes IHE lists (ITI TF-3 Table 4.2.4.1-2), replacement by relatesTo, and the wrong role refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tests.mhd_support import (
    add_folder,
    add_patient,
    docrefs,
    provide_bundle,
    submission_set,
    update_folder,
    urn,
)
from tests.server_support import (
    ADMIN,
    CPR_SYSTEM,
    FHIR_JSON,
    OTHER_CLINIC,
    Server,
    card,
    citizen,
    clinician,
    encode,
    finding_codes,
    ids,
    is_outcome,
    new_patient,
    note,
    source,
)

pytestmark = pytest.mark.network


def post(server: Server, tx: dict[str, Any], who: Any = None) -> Any:
    return server.request("POST", "/fhir", who or source(), content=encode(tx), headers={"Content-Type": FHIR_JSON})


def path_of(location: str, server: Server) -> str:
    assert location.startswith(server.url), location
    return location[len(server.url):]


def audit_rows(server: Server, cpr: str) -> list[dict[str, Any]]:
    with server.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT action, outcome, reason FROM audit_events WHERE patient_cpr = :cpr ORDER BY seq"),
            {"cpr": cpr}).mappings()]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "bundle"])
def test_a_provide_document_bundle_is_stored_and_answered_entry_by_entry(server: Server, binary: bool) -> None:
    p = new_patient("Mads", "Mhd")
    doc = note(p)
    tx = provide_bundle(doc, binary=binary)
    r = post(server, tx)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["type"] == "transaction-response"
    # one entry per request entry, in the request's order (ITI-65 2:3.65.4.2.2), each created with a location
    assert len(answer["entry"]) == len(tx["entry"]) == 3
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 3
    list_loc, ref_loc, doc_loc = (e["response"]["location"] for e in answer["entry"])
    assert "/fhir/List/" in list_loc and list_loc.endswith("/_history/1")
    assert "/fhir/DocumentReference/" in ref_loc and ref_loc.endswith("/_history/1")
    me = citizen(p)
    docref = server.get(path_of(ref_loc, server), me)
    assert docref.status_code == 200, docref.text
    assert docref.json()["masterIdentifier"]["value"] == doc["entry"][0]["resource"]["identifier"]["value"]
    # the document retrieved is the document sent (the Binary's bytes; the Bundle as JSON)
    content = server.get(path_of(doc_loc, server), me)
    assert content.status_code == 200
    if binary:
        assert content.content == encode(doc)
    else:
        assert json.loads(content.content) == doc
    assert docref.json()["content"][0]["attachment"]["url"] == doc_loc
    submission_set = server.get(path_of(list_loc, server).removesuffix("/_history/1"), me)
    assert submission_set.status_code == 200, submission_set.text
    assert submission_set.json()["entry"] == [{"item": {"reference": f"DocumentReference/{docref.json()['id']}"}}]
    assert submission_set.json()["code"] == tx["entry"][0]["resource"]["code"]
    assert ids(server.search(me, p).json()) == {docref.json()["id"]}
    assert [a["action"] for a in audit_rows(server, p.cpr)][:1] == ["submit"]


def test_a_diagnosis_card_is_provided_with_its_own_document_reference(server: Server) -> None:
    p = new_patient("Carl", "Kort")
    doc = card(p)
    r = post(server, provide_bundle(doc))
    assert r.status_code == 200, r.text
    docref = r.json()["entry"][1]["resource"]
    assert docref["masterIdentifier"]["value"] == doc["identifier"]["value"]  # ConditionList: Bundle.identifier
    assert docref["meta"]["profile"] == ["http://medcomfhir.dk/ig/conditionlist/StructureDefinition/"
                                         "medcom-conditionlist-documentreference"]
    # LOINC by its URL is the same code as by its OID (no metadata mismatch), but MedCom's profile for the card
    # binds the type to a value set written with the OID: refused as not meeting the profile
    loinc_url = provide_bundle(card(p))
    docrefs(loinc_url)[0]["type"]["coding"][0]["system"] = "http://loinc.org"
    by_url = post(server, loinc_url)
    assert by_url.status_code == 422 and "XDSRegistryMetadataError" in finding_codes(by_url.json())
    assert "medcom-conditionlist-documentreference" in by_url.json()["issue"][0]["diagnostics"]
    tx = provide_bundle(card(p))
    docrefs(tx)[0]["type"]["coding"][0]["code"] = "11488-4"  # another LOINC code: not the card's
    wrong = post(server, tx)
    assert wrong.status_code == 422 and "XDSRegistryMetadataError" in finding_codes(wrong.json())


def test_two_documents_in_one_transaction_are_both_stored(server: Server) -> None:
    p = new_patient("Tove", "To")
    r = post(server, provide_bundle(note(p), note(p)))
    assert r.status_code == 200, r.text
    assert len(ids(server.search(citizen(p), p).json())) == 2


def test_a_document_replaced_by_relates_to(server: Server) -> None:
    p = new_patient("Rasmus", "Erstat")
    old = server.shared(source(), note(p))
    r = post(server, provide_bundle(note(p), replaces=old["id"]))
    assert r.status_code == 200, r.text
    new = r.json()["entry"][1]["resource"]
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}]
    assert server.status_of(old["id"]) == "superseded"
    assert ids(server.search(citizen(p), p).json()) == {new["id"]}
    # replacing it again: it is no longer current
    again = post(server, provide_bundle(note(p), replaces=old["id"]))
    assert again.status_code == 422 and "replace-not-current" in finding_codes(again.json())


def test_another_clinics_document_is_not_replaced_through_relates_to(server: Server) -> None:
    p = new_patient("Aase", "Anden")
    theirs = server.shared(source(OTHER_CLINIC), note(p, OTHER_CLINIC))
    before = server.rows()
    r = post(server, provide_bundle(note(p), replaces=theirs["id"]))
    assert r.status_code == 403 and "replace-other-organisation" in finding_codes(r.json())
    assert server.status_of(theirs["id"]) == "current"
    assert server.rows()["documents"] == before["documents"]


def test_a_relation_the_server_does_not_act_on_is_a_warning(server: Server) -> None:
    p = new_patient("Vera", "Varsel")
    tx = provide_bundle(note(p))
    docrefs(tx)[0]["relatesTo"] = [{"code": "transforms", "target": {"reference": "DocumentReference/x"}}]
    r = post(server, tx)
    assert r.status_code == 200, r.text
    outcome = r.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["severity"] == "warning"
    assert finding_codes(outcome) == {"PartialTransformContentNotProcessed"}  # ITI-65 Table 2:3.65.4.1.3-1


def _other_cpr(tx: dict[str, Any]) -> None:
    patient = docrefs(tx)[0]["contained"][0]
    patient["identifier"][0]["value"] = new_patient().cpr


def _list_subject(tx: dict[str, Any]) -> None:
    tx["entry"][0]["resource"]["subject"]["identifier"]["value"] = new_patient().cpr


def _no_subject(tx: dict[str, Any]) -> None:
    del docrefs(tx)[0]["subject"]


def _master(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["masterIdentifier"]["value"] = urn()


def _type(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["type"] = {"coding": [{"system": "http://snomed.info/sct", "code": "371530004"}]}


def _author(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["contained"][1]["identifier"][0]["value"] = OTHER_CLINIC.sor


def _period(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["context"]["period"]["start"] = "2020-01-01T10:00:00+01:00"


def _confidentiality(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["securityLabel"][0]["coding"][0]["code"] = "R"  # the note is N (normal)


def _creation(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["content"][0]["attachment"]["creation"] = "2025-01-01T00:00:00+01:00"  # not Bundle.timestamp


def _nowhere(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["content"][0]["attachment"]["url"] = urn()


def _extra_binary(tx: dict[str, Any]) -> None:
    tx["entry"].append({"fullUrl": urn(), "resource": dict(tx["entry"][2]["resource"]),
                        "request": {"method": "POST", "url": "Binary"}})


def _list_item(tx: dict[str, Any]) -> None:
    tx["entry"][0]["resource"]["entry"][0]["item"]["reference"] = urn()


def _hash(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["content"][0]["attachment"]["hash"] = base64.b64encode(b"\0" * 20).decode()


def _size(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["content"][0]["attachment"]["size"] += 1


def _content_type(tx: dict[str, Any]) -> None:
    docrefs(tx)[0]["content"][0]["attachment"]["contentType"] = "application/fhir+xml"


def _no_narrative(tx: dict[str, Any]) -> None:
    del docrefs(tx)[0]["text"]  # MedCom's DocumentReference profile: text 1..1


def _folder(tx: dict[str, Any]) -> None:
    tx["entry"][0]["resource"]["code"]["coding"][0]["code"] = "folder"


def _patient_entry(tx: dict[str, Any]) -> None:
    tx["entry"].append({"fullUrl": urn(), "resource": {"resourceType": "Patient"},
                        "request": {"method": "POST", "url": "Patient"}})


def _bad_binary(tx: dict[str, Any]) -> None:
    tx["entry"][2]["resource"]["data"] = "not base64!"


def _patient_other_cpr(tx: dict[str, Any]) -> None:
    add_patient(tx, new_patient().cpr)


def _two_patients(tx: dict[str, Any]) -> None:
    cpr = submission_set(tx)["subject"]["identifier"]["value"]
    add_patient(tx, cpr)
    add_patient(tx, cpr)


def _folder_other_patient(tx: dict[str, Any]) -> None:
    add_folder(tx)["subject"]["identifier"]["value"] = new_patient().cpr


def _folder_no_subject(tx: dict[str, Any]) -> None:
    del add_folder(tx)["subject"]


def _folder_outside(tx: dict[str, Any]) -> None:
    # a document kept already: a Folder here holds documents of its own submission only
    add_folder(tx)["entry"].append({"item": {"reference": "DocumentReference/kept-before"}})


def _folder_of_a_binary(tx: dict[str, Any]) -> None:
    binary = tx["entry"][2]["fullUrl"]
    add_folder(tx)["entry"] = [{"item": {"reference": binary}}]


def _folder_twice(tx: dict[str, Any]) -> None:
    folder = add_folder(tx)
    folder["entry"] *= 2


def _folder_not_listed(tx: dict[str, Any]) -> None:
    add_folder(tx, listed=False)


def _folder_retired(tx: dict[str, Any]) -> None:
    add_folder(tx)["status"] = "retired"


def _folder_update(tx: dict[str, Any]) -> None:
    add_folder(tx)
    # a FHIR update names the resource it updates (request.url List/[id]); IHE's example writes "List"
    tx["entry"][1]["request"] = {"method": "PUT", "url": "List"}


def _folder_unique_id_twice(tx: dict[str, Any]) -> None:
    add_folder(tx)["identifier"] = submission_set(tx)["identifier"]


def _folder_not_fhir(tx: dict[str, Any]) -> None:
    add_folder(tx)["title"] = {"text": "Forløb"}  # List.title is a string


def _neither_list(tx: dict[str, Any]) -> None:
    add_folder(tx)["code"]["coding"][0]["code"] = "worklist"


# (mutation of a valid transaction, HTTP status, the code in issue.details.coding)
ERRORS: list[tuple[Callable[[dict[str, Any]], None], int, str]] = [
    (_other_cpr, 422, "XDSPatientIdDoesNotMatch"),
    (_list_subject, 422, "XDSPatientIdDoesNotMatch"),
    (_no_subject, 422, "XDSUnknownPatientId"),
    (_master, 422, "XDSDocumentUniqueIdError"),
    (_type, 422, "XDSRegistryMetadataError"),
    (_author, 422, "XDSRegistryMetadataError"),
    (_period, 422, "XDSRegistryMetadataError"),
    (_confidentiality, 422, "XDSRegistryMetadataError"),
    (_creation, 422, "XDSRegistryMetadataError"),
    (_nowhere, 422, "XDSMissingDocument"),
    (_bad_binary, 422, "XDSMissingDocument"),
    (_extra_binary, 422, "XDSMissingDocumentMetadata"),
    (_list_item, 422, "UnresolvedReferenceException"),
    (_hash, 422, "XDSNonIdenticalHash"),
    (_size, 422, "XDSNonIdenticalSize"),
    (_content_type, 422, "XDSRepositoryMetadataError"),
    (_no_narrative, 422, "XDSRegistryMetadataError"),
    (_folder, 422, "XDSRegistryMetadataError"),  # a Folder, but no SubmissionSet
    # ITI-65 2:3.65.4.1.2.2: a Patient in the Bundle is matched to the patient (here by CPR number); the Provide
    # Bundle's Patient slice is 0..1
    (_patient_entry, 422, "XDSUnknownPatientId"),
    (_patient_other_cpr, 422, "XDSPatientIdDoesNotMatch"),
    (_two_patients, 422, "XDSRegistryMetadataError"),
    # a Folder's subject is the documents' patient (2:3.65.4.1.2.1: all List.subject values are the patient)
    (_folder_other_patient, 422, "XDSPatientIdDoesNotMatch"),
    (_folder_no_subject, 422, "XDSUnknownPatientId"),
    (_folder_outside, 422, "UnresolvedReferenceException"),
    (_folder_of_a_binary, 422, "XDSRegistryMetadataError"),  # Folder entry.item is Reference(DocumentReference)
    (_folder_twice, 422, "XDSRegistryMetadataError"),
    (_folder_not_listed, 422, "XDSRegistryMetadataError"),  # the SubmissionSet names its new Folders
    (_folder_retired, 422, "XDSRegistryMetadataError"),
    (_folder_update, 422, "XDSRegistryMetadataError"),  # a PUT List that names no kept List
    (_folder_unique_id_twice, 422, "XDSDuplicateUniqueIdInRegistry"),
    (_neither_list, 422, "XDSRegistryMetadataError"),
    (_folder_not_fhir, 422, "XDSRegistryMetadataError"),
]


@pytest.mark.parametrize(("mutate", "status", "code"), ERRORS, ids=[m.__name__.strip("_") for m, _, _ in ERRORS])
def test_each_mhd_error_is_an_operation_outcome_and_stores_nothing(
        server: Server, mutate: Callable[[dict[str, Any]], None], status: int, code: str) -> None:
    p = new_patient("Eva", "Fejl")
    tx = provide_bundle(note(p))
    mutate(tx)
    before = server.rows()
    r = post(server, tx)
    assert r.status_code == status, r.text
    assert is_outcome(r)
    assert code in finding_codes(r.json())
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}
    assert after["audit_events"] == before["audit_events"] + 1  # the refusal


def test_the_profile_error_says_which_profile(server: Server) -> None:
    tx = provide_bundle(note(new_patient()))
    _no_narrative(tx)
    r = post(server, tx, )
    assert "medcom-contained-documentreference" in r.json()["issue"][0]["diagnostics"]
    da = server.request("POST", "/fhir", source(), content=encode(tx),
                        headers={"Content-Type": FHIR_JSON, "Accept-Language": "da"})
    assert "opfylder ikke MedComs profil" in da.json()["issue"][0]["diagnostics"]


def test_an_invalid_last_document_stores_nothing_of_the_transaction(server: Server) -> None:
    p = new_patient("Hanne", "Halvvejs")
    first, last = note(p), note(p)
    del last["entry"][0]["resource"]["subject"]  # the Composition without its subject: not a valid Shared Note
    tx = provide_bundle(first, last)
    before = server.rows()
    r = post(server, tx)
    assert r.status_code == 422, r.text
    assert is_outcome(r)
    assert server.search(citizen(p), p).json().get("entry", []) == []
    assert {t: n for t, n in server.rows().items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}


def test_a_transaction_whose_last_document_fails_in_the_database_stores_nothing(server: Server) -> None:
    """The last document's identifier is taken by another stored document: found only when the store inserts it,
    after the first document's rows are written in the same database transaction, which is rolled back."""
    p = new_patient("Hugo", "Halvvejs")
    taken = server.shared(source(), note(p, name="taken-" + p.cpr, note_html="<p>Det første notat.</p>"))
    first, last = note(p), note(p, name="taken-" + p.cpr, note_html="<p>Et andet notat.</p>")
    before = server.rows()
    r = post(server, provide_bundle(first, last))
    assert r.status_code == 409, r.text
    assert "XDSDuplicateUniqueIdInRegistry" in finding_codes(r.json())
    last_record = audit_rows(server, p.cpr)[-1]
    assert (last_record["action"], last_record["reason"]) == ("refused", "duplicate-identifier")
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}
    assert ids(server.search(citizen(p), p).json()) == {taken["id"]}  # the first document is not findable


def test_only_a_gp_system_provides_and_only_its_own_clinics_documents(server: Server) -> None:
    p = new_patient("Rolf", "Rolle")
    tx = provide_bundle(note(p))
    before = server.rows()
    for who in (citizen(p), clinician("MHD1"), ADMIN):
        r = post(server, tx, who)
        assert r.status_code == 403 and "only-sources-submit" in finding_codes(r.json()), who.role
    other = post(server, tx, source(OTHER_CLINIC))
    assert other.status_code == 403 and "not-own-organisation" in finding_codes(other.json())
    assert server.rows()["documents"] == before["documents"]


def test_the_submission_set_is_read_only_by_who_may_read_its_documents(server: Server) -> None:
    p, stranger = new_patient("Lis", "Liste"), new_patient("Sten", "Fremmed")
    r = post(server, provide_bundle(note(p)))
    path = path_of(r.json()["entry"][0]["response"]["location"], server).removesuffix("/_history/1")
    assert server.get(path, citizen(p)).status_code == 200
    assert server.get(path, citizen(stranger)).status_code == 404  # not even whether it exists
    assert server.get(path, source()).status_code == 403
    assert server.get(path, clinician("NOREL1")).status_code == 403  # no treatment relation


# -- PUT [base]/Bundle/{id} ----------------------------------------------------------------------------------

def put(server: Server, doc: dict[str, Any], doc_id: str | None = None, who: Any = None) -> Any:
    return server.request("PUT", f"/fhir/Bundle/{doc_id or doc['id']}", who or source(), content=encode(doc),
                          headers={"Content-Type": FHIR_JSON})


def test_put_of_a_document_creates_it_under_its_bundle_id_once(server: Server) -> None:
    p = new_patient("Per", "Put")
    doc = note(p)
    r = put(server, doc)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/fhir/Bundle/{doc['id']}")
    assert r.json() == doc
    read = server.get(f"/fhir/Bundle/{doc['id']}", citizen(p))
    assert read.status_code == 200 and read.content == encode(doc)
    assert put(server, doc).status_code == 200  # the same bytes again: as stored
    changed = json.loads(json.dumps(doc))
    changed["timestamp"] = "2026-11-21T00:06:00+01:00"
    again = put(server, changed)
    assert again.status_code == 409 and "document-immutable" in finding_codes(again.json())
    assert server.get(f"/fhir/Bundle/{doc['id']}", citizen(p)).content == encode(doc)


def test_put_under_another_id_is_refused(server: Server) -> None:
    doc = note(new_patient())
    before = server.rows()
    r = put(server, doc, "some-other-id")
    assert r.status_code == 400 and "put-id" in finding_codes(r.json())
    not_an_id = put(server, doc, "x" * 65)  # longer than a FHIR id may be
    assert not_an_id.status_code == 400 and "put-id" in finding_codes(not_an_id.json())
    assert server.rows()["documents"] == before["documents"]


def test_put_of_an_invalid_document_is_the_validators_answer(server: Server) -> None:
    doc = note(new_patient())
    del doc["entry"][0]["resource"]["subject"]
    r = put(server, doc)
    assert r.status_code == 422 and is_outcome(r)
    assert server.get(f"/fhir/Bundle/{doc['id']}", ADMIN).status_code == 404  # nothing stored under the id


def test_a_relation_ihe_names_no_warning_for_is_kronikers_own_warning(server: Server) -> None:
    tx = provide_bundle(note(new_patient()))
    docrefs(tx)[0]["relatesTo"] = [{"code": "signs", "target": {"reference": "DocumentReference/x"}}]
    r = post(server, tx)
    assert r.status_code == 200, r.text
    assert finding_codes(r.json()["entry"][1]["response"]["outcome"]) == {"relation-not-processed"}


def test_put_by_the_wrong_role_is_refused(server: Server) -> None:
    p = new_patient("Vagn", "Forkert")
    doc = note(p)
    for who in (citizen(p), clinician("PUT1"), ADMIN):
        r = put(server, doc, who=who)
        assert r.status_code == 403 and "only-sources-submit" in finding_codes(r.json()), who.role
    r = put(server, doc, who=source(OTHER_CLINIC))
    assert r.status_code == 403 and "not-own-organisation" in finding_codes(r.json())


def test_the_capability_statement_lists_put_and_the_list(server: Server) -> None:
    cs = server.get("/fhir/metadata").json()
    by_type = {r["type"]: {i["code"] for i in r["interaction"]} for r in cs["rest"][0]["resource"]}
    assert {"create", "read", "update"} <= by_type["Bundle"]
    assert by_type["List"] == {"read"}


# Shapes that are not FHIR where the server reads the transaction itself (found by sending every element each of
# null, a number, a string, an array, an object): each is a 4xx OperationOutcome, and nothing is stored.
HOSTILE: list[tuple[tuple[Any, ...], Any]] = [
    (("entry",), 1),
    (("entry", 0, "resource", "code", "coding"), 1e308),
    (("entry", 0, "resource", "entry", 0, "item"), "urn:uuid:x"),
    (("entry", 0, "resource", "entry", 0, "item"), [1]),
    (("entry", 1, "resource", "type", "coding"), True),
    (("entry", 1, "resource", "category"), 1),
    (("entry", 1, "resource", "contained"), True),
    (("entry", 1, "resource", "contained", 0, "identifier"), -1),
    (("entry", 1, "resource", "contained", 1, "id"), [None]),
    (("entry", 1, "resource", "content", 0, "attachment", "contentType"), {"a": 1}),
    (("entry", 1, "resource", "relatesTo"), [{"code": ["replaces"]}]),
    (("entry", 1, "resource", "context", "period"), {"start": 7}),
    (("entry", 2, "resource", "contentType"), ["application/fhir+json"]),
]


@pytest.mark.parametrize(("path", "value"), HOSTILE, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v in HOSTILE])
def test_a_hostile_transaction_is_an_operation_outcome(server: Server, path: tuple[Any, ...], value: Any) -> None:
    tx = provide_bundle(note(new_patient()))
    target: Any = tx
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    before = server.rows()
    r = post(server, tx)
    assert 400 <= r.status_code < 500, r.text
    assert is_outcome(r)
    assert server.rows()["documents"] == before["documents"]


# -- Folders, the Patient entry, a transaction sent again -----------------------------------------------------

def locations(answer: Any) -> list[str]:
    return [e["response"]["location"] for e in answer.json()["entry"]]


def test_a_new_folder_is_stored_with_its_documents_and_read_as_the_patients(server: Server) -> None:
    p, stranger = new_patient("Frida", "Mappe"), new_patient("Sten", "Fremmed")
    tx = provide_bundle(note(p), note(p))
    folder = add_folder(tx)
    r = post(server, tx)
    assert r.status_code == 200, r.text
    answer = r.json()["entry"]
    # one entry per request entry, in order: the SubmissionSet, the Folder, then each DocumentReference, document
    assert [e["response"]["status"] for e in answer] == ["201 Created"] * 6
    set_loc, folder_loc = (path_of(loc, server).removesuffix("/_history/1") for loc in locations(r)[:2])
    assert folder_loc.startswith("/fhir/List/") and folder_loc != set_loc
    stored_refs = [{"item": {"reference": f"DocumentReference/{answer[i]['resource']['id']}"}} for i in (2, 4)]
    me = citizen(p)
    kept = server.get(folder_loc, me)
    assert kept.status_code == 200, kept.text
    assert kept.json()["code"] == folder["code"] and kept.json()["title"] == "Forløb"
    assert kept.json()["entry"] == stored_refs  # the stored documents, in the Folder's order
    assert kept.json()["subject"] == {"identifier": {"system": CPR_SYSTEM, "value": p.cpr}}
    # the SubmissionSet names the DocumentReferences and the Folder, in the order the source named them
    assert server.get(set_loc, me).json()["entry"] == [
        *stored_refs, {"item": {"reference": folder_loc.removeprefix("/fhir/")}}]
    # a Folder is the patient's: read by who may read its documents, and no one else learns it exists
    assert server.get(folder_loc, citizen(stranger)).status_code == 404
    assert server.get(folder_loc, source()).status_code == 403
    assert server.get(folder_loc, clinician("NOREL2")).status_code == 403
    rows = audit_rows(server, p.cpr)
    assert [a["action"] for a in rows[:2]] == ["submit", "submit"]
    assert [(a["action"], a["outcome"]) for a in rows].count(("read-List", "0")) == 2  # the citizen's two reads


def test_a_patient_in_the_bundle_is_matched_by_cpr_and_not_kept(server: Server) -> None:
    p = new_patient("Palle", "Patient")
    for method in ("POST", "PUT"):  # MHDprovidePatientActions
        tx = provide_bundle(note(p))
        patient_url = add_patient(tx, p.cpr, method=method)
        submission_set(tx)["subject"] = {"reference": patient_url}  # the SubmissionSet names it by fullUrl
        before = server.rows()
        r = post(server, tx)
        assert r.status_code == 200, r.text
        last = r.json()["entry"][-1]["response"]
        assert last["status"] == "200 OK"  # matched, nothing created
        assert last["location"] == f"{server.url}/fhir/Patient/{p.cpr}"
        assert finding_codes(last["outcome"]) == {"patient-matched"}
        after = server.rows()
        assert after["documents"] == before["documents"] + 1
        assert after["clinical_resources"] == before["clinical_resources"] + 1  # the SubmissionSet only


def test_a_transaction_sent_again_is_answered_as_the_first_time(server: Server) -> None:
    p = new_patient("Ib", "Igen")
    tx = provide_bundle(note(p), note(p))
    add_folder(tx)
    first = post(server, tx)
    assert first.status_code == 200, first.text
    before = server.rows()
    again = post(server, tx)  # the same bytes: the first answer was lost
    assert again.status_code == 200, again.text
    assert again.json()["type"] == "transaction-response"
    assert locations(again) == locations(first)
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 6
    assert [e.get("resource") for e in again.json()["entry"]] == [e.get("resource") for e in first.json()["entry"]]
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}  # nothing stored anew
    assert after["audit_events"] == before["audit_events"] + 2  # one record per document
    with server.engine.connect() as conn:
        details = conn.execute(sa.text("SELECT action, detail FROM audit_events WHERE patient_cpr = :cpr "
                                       "ORDER BY seq DESC LIMIT 2"), {"cpr": p.cpr}).all()
    assert {a for a, _ in details} == {"submit"}
    assert all(json.loads(d)["idempotent"] is True for _, d in details)


def test_the_same_submission_set_written_anew_is_answered_as_the_first(server: Server) -> None:
    """The source builds the transaction again (new fullUrls, new resource ids) with the same SubmissionSet
    uniqueId and the same documents: the same submission."""
    p = new_patient("Ida", "Igen")
    doc = note(p)
    tx = provide_bundle(doc)
    first = post(server, tx)
    assert first.status_code == 200, first.text
    rebuilt = provide_bundle(doc)
    submission_set(rebuilt)["identifier"] = submission_set(tx)["identifier"]
    assert rebuilt["entry"][0]["fullUrl"] != tx["entry"][0]["fullUrl"]
    again = post(server, rebuilt)
    assert again.status_code == 200, again.text
    assert locations(again) == locations(first)


def test_a_transaction_without_a_submission_set_unique_id_sent_again(server: Server) -> None:
    p = new_patient("Ulla", "Uden")
    tx = provide_bundle(note(p))
    del submission_set(tx)["identifier"]
    first = post(server, tx)
    assert first.status_code == 200, first.text
    again = post(server, tx)
    assert again.status_code == 200, again.text
    assert locations(again) == locations(first)
    # the same document in a SubmissionSet with a uniqueId is another submission: its document is taken
    other = provide_bundle(note(p))
    other["entry"][1:] = tx["entry"][1:]
    other["entry"][0]["resource"]["entry"] = tx["entry"][0]["resource"]["entry"]
    refused = post(server, other)
    assert refused.status_code == 409 and "XDSDuplicateUniqueIdInRegistry" in finding_codes(refused.json())


def test_a_replacement_sent_again_is_answered_as_the_first(server: Server) -> None:
    p = new_patient("Rene", "Retry")
    old = server.shared(source(), note(p))
    tx = provide_bundle(note(p), replaces=old["id"])
    first = post(server, tx)
    assert first.status_code == 200, first.text
    again = post(server, tx)  # the replaced document is superseded now; this is still the same submission
    assert again.status_code == 200, again.text
    assert locations(again) == locations(first)


def test_the_same_submission_set_unique_id_for_other_content_is_refused(server: Server) -> None:
    p = new_patient("Dan", "Dublet")
    tx = provide_bundle(note(p))
    folder = add_folder(tx)
    assert post(server, tx).status_code == 200
    cases = {}
    other_doc = provide_bundle(note(p))  # another document under the same SubmissionSet uniqueId
    submission_set(other_doc)["identifier"] = submission_set(tx)["identifier"]
    cases["other document"] = other_doc
    more = provide_bundle(note(p))  # the same document and one more
    more["entry"] += tx["entry"][2:]
    submission_set(more)["entry"] += submission_set(tx)["entry"][:1]
    submission_set(more)["identifier"] = submission_set(tx)["identifier"]
    cases["one more document"] = more
    no_folder = json.loads(json.dumps(tx))  # the same document without its Folder
    del no_folder["entry"][1]
    submission_set(no_folder)["entry"] = submission_set(no_folder)["entry"][:1]
    cases["without the folder"] = no_folder
    folder_id = provide_bundle(note(p))  # the Folder's uniqueId as a new SubmissionSet's
    submission_set(folder_id)["identifier"] = folder["identifier"]
    cases["a folder's unique id"] = folder_id
    before = server.rows()
    for name, case in cases.items():
        r = post(server, case)
        assert r.status_code == 409, (name, r.text)
        assert "XDSDuplicateUniqueIdInRegistry" in finding_codes(r.json()), name
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}


def test_the_same_documents_under_a_new_submission_set_unique_id_are_refused(server: Server) -> None:
    p = new_patient("Nina", "Ny")
    tx = provide_bundle(note(p))
    assert post(server, tx).status_code == 200
    submission_set(tx)["identifier"][0]["value"] = urn()
    r = post(server, tx)
    assert r.status_code == 409 and "XDSDuplicateUniqueIdInRegistry" in finding_codes(r.json())


def test_a_folder_that_is_not_a_fhir_list_says_why(server: Server) -> None:
    tx = provide_bundle(note(new_patient()))
    _folder_not_fhir(tx)
    r = post(server, tx)
    assert r.status_code == 422, r.text
    assert "entry 1" in r.json()["issue"][0]["diagnostics"] and "title" in r.json()["issue"][0]["diagnostics"]


def test_two_copies_sent_at_once_store_one_submission_and_answer_both_alike(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    p = new_patient("Tvilling", "Samtidig")
    tx = provide_bundle(note(p), note(p))
    add_folder(tx)
    before = server.rows()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: post(server, tx), range(2)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert locations(answers[0]) == locations(answers[1])
    statuses = sorted("/".join(sorted({e["response"]["status"] for e in a.json()["entry"]})) for a in answers)
    assert statuses == ["200 OK", "201 Created"]  # one created it, the other was answered as its resend
    after = server.rows()
    assert after["documents"] == before["documents"] + 2
    assert after["clinical_resources"] == before["clinical_resources"] + 2  # the SubmissionSet and the Folder


def test_a_kept_folder_is_not_changed_by_put_or_patch(server: Server) -> None:
    p = new_patient("Frede", "Fast")
    tx = provide_bundle(note(p))
    add_folder(tx)
    r = post(server, tx)
    folder = path_of(locations(r)[1], server).removesuffix("/_history/1")
    for method in ("PUT", "PATCH"):
        refused = server.request(method, folder, source(), json={"resourceType": "List"})
        assert refused.status_code == 405 and is_outcome(refused), method
    assert server.get(folder, citizen(p)).json()["entry"] == [
        {"item": {"reference": f"DocumentReference/{r.json()['entry'][2]['resource']['id']}"}}]


# -- Documents added to a kept Folder (ITI-65 with PUT List/{id}: MHDprovideFolderActions) --------------------

def kept_folder(server: Server, p: Any, clinic: Any = None) -> tuple[str, dict[str, Any], str]:
    """A Folder kept here holding one of the patient's documents: its id, the Folder as the patient reads it, the
    document's id."""
    tx = provide_bundle(note(p, clinic) if clinic else note(p))
    add_folder(tx)
    r = post(server, tx, source(clinic) if clinic else None)
    assert r.status_code == 200, r.text
    folder_id = path_of(locations(r)[1], server).removesuffix("/_history/1").rsplit("/", 1)[1]
    read = server.get(f"/fhir/List/{folder_id}", citizen(p))
    assert read.status_code == 200, read.text
    return folder_id, read.json(), r.json()["entry"][2]["resource"]["id"]


def held(ids: list[str]) -> list[dict[str, Any]]:
    return [{"item": {"reference": f"DocumentReference/{i}"}} for i in ids]


def test_documents_are_added_to_a_kept_folder_as_its_next_version(server: Server) -> None:
    p = new_patient("Folmer", "Mappe")
    folder_id, kept, first_doc = kept_folder(server, p)
    assert kept["meta"]["versionId"] == "1"
    tx = provide_bundle(note(p), note(p))
    update_folder(tx, folder_id, kept)
    before = server.rows()
    r = post(server, tx)
    assert r.status_code == 200, r.text
    answer = r.json()["entry"]
    # the PUT is a FHIR update of the Folder: 200 OK, at its next version; the documents are created
    assert answer[1]["response"]["status"] == "200 OK"
    assert answer[1]["response"]["location"] == f"{server.url}/fhir/List/{folder_id}/_history/2"
    assert answer[1]["response"]["etag"] == 'W/"2"'
    assert [e["response"]["status"] for e in answer[2:]] == ["201 Created"] * 4
    new_ids = [answer[i]["resource"]["id"] for i in (2, 4)]
    me = citizen(p)
    folder = server.get(f"/fhir/List/{folder_id}", me).json()  # read back by the patient
    assert folder["meta"]["versionId"] == "2"
    assert folder["meta"]["lastUpdated"] == answer[1]["response"]["lastModified"]
    assert dt.datetime.fromisoformat(folder["meta"]["lastUpdated"]) > \
        dt.datetime.fromisoformat(kept["meta"]["lastUpdated"])
    assert folder["entry"] == held([first_doc, *new_ids])  # what it held, then what was added, in its order
    assert (folder["identifier"], folder["title"], folder["code"]) == (kept["identifier"], kept["title"], kept["code"])
    assert folder["subject"] == {"identifier": {"system": CPR_SYSTEM, "value": p.cpr}}
    # the SubmissionSet names its documents and the Folder, at the version it made (XDS: HasMember associations)
    set_path = path_of(locations(r)[0], server).removesuffix("/_history/1")
    assert server.get(set_path, me).json()["entry"] == [
        *held(new_ids), {"item": {"reference": f"List/{folder_id}/_history/2"}}]
    after = server.rows()
    assert after["documents"] == before["documents"] + 2
    assert after["clinical_resources"] == before["clinical_resources"] + 1  # the new SubmissionSet only
    with server.engine.connect() as conn:
        updates = conn.execute(sa.text("SELECT detail, outcome FROM audit_events WHERE patient_cpr = :cpr "
                                       "AND action = 'update-List'"), {"cpr": p.cpr}).all()
    assert len(updates) == 1 and updates[0][1] == "0"
    detail = json.loads(updates[0][0])
    assert (detail["id"], detail["version"], detail["added"]) == (folder_id, "2", new_ids)
    # and again: version 3
    third = provide_bundle(note(p))
    update_folder(third, folder_id, folder)
    r3 = post(server, third)
    assert r3.status_code == 200, r3.text
    assert locations(r3)[1] == f"{server.url}/fhir/List/{folder_id}/_history/3"
    again = server.get(f"/fhir/List/{folder_id}", me).json()
    assert again["meta"]["versionId"] == "3"
    assert again["entry"] == held([first_doc, *new_ids, r3.json()["entry"][2]["resource"]["id"]])


def _unknown(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    tx = provide_bundle(note(p))
    update_folder(tx, "no-such-folder", kept)
    return tx


def _a_submission_set(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    r = post(server, provide_bundle(note(p)))
    set_id = path_of(locations(r)[0], server).removesuffix("/_history/1").rsplit("/", 1)[1]
    tx = provide_bundle(note(p))
    update_folder(tx, set_id, kept)
    return tx


def _other_patient(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    other_id, other_kept, _ = kept_folder(server, new_patient("Otto", "Anden"))
    tx = provide_bundle(note(p))
    update_folder(tx, other_id, other_kept)["subject"] = kept["subject"]  # sent as this patient's
    return tx


def _removed(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    tx = provide_bundle(note(p))
    folder = update_folder(tx, folder_id, kept)
    folder["entry"] = folder["entry"][1:]  # the document it held left out
    return tx


def _other_organisation(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    their_id, their_kept, _ = kept_folder(server, p, OTHER_CLINIC)
    tx = provide_bundle(note(p))
    update_folder(tx, their_id, their_kept)
    return tx


def _not_in_the_transaction(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    elsewhere = server.shared(source(), note(p))["id"]  # the patient's, kept, but neither sent nor in the Folder
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)["entry"].insert(1, {"item": {"reference": f"DocumentReference/{elsewhere}"}})
    return tx


def _other_unique_id(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)["identifier"] = [{"use": "usual", "system": "urn:ietf:rfc:3986",
                                                         "value": urn()}]
    return tx


def _nothing_added(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)["entry"] = kept["entry"]
    return tx


def _not_named_by_the_submission_set(server: Server, p: Any, folder_id: str, kept: dict[str, Any]) -> dict[str, Any]:
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept, listed=False)
    return tx


# (the transaction, HTTP status, the code in issue.details.coding, what the message says)
FOLDER_UPDATE_ERRORS: list[tuple[Callable[..., dict[str, Any]], int, str, str]] = [
    # the Folder is the caller's organisation's: an unknown id and another's Folder are answered alike
    (_unknown, 403, "UnresolvedReferenceException", "your organisation has no Folder"),
    (_other_organisation, 403, "UnresolvedReferenceException", "your organisation has no Folder"),
    (_a_submission_set, 422, "XDSRegistryMetadataError", "is a SubmissionSet, not a Folder"),
    (_other_patient, 422, "XDSPatientIdDoesNotMatch", "another patient's"),
    # ITI-65: "removal of entries from Folders is not generally allowed"; an update the registry does not support
    (_removed, 422, "XDSMetadataUpdateOperationError", "would lose 1 of its documents"),
    (_not_in_the_transaction, 422, "UnresolvedReferenceException", "names no entry of the transaction"),
    (_other_unique_id, 422, "XDSMetadataUpdateError", "keeps its uniqueId"),
    (_nothing_added, 422, "XDSRegistryMetadataError", "adds no DocumentReference"),
    (_not_named_by_the_submission_set, 422, "XDSRegistryMetadataError", "each Folder of the transaction once"),
]


@pytest.mark.parametrize(("make", "status", "finding", "says"), FOLDER_UPDATE_ERRORS,
                         ids=[m.__name__.strip("_") for m, *_ in FOLDER_UPDATE_ERRORS])
def test_a_folder_update_refused_changes_nothing(server: Server, make: Callable[..., dict[str, Any]], status: int,
                                                 finding: str, says: str) -> None:
    p = new_patient("Vagn", "Vogter")
    folder_id, kept, _ = kept_folder(server, p)
    tx = make(server, p, folder_id, kept)
    before = server.rows()
    r = post(server, tx)
    assert r.status_code == status, r.text
    assert is_outcome(r)
    assert finding in finding_codes(r.json())
    assert says in r.json()["issue"][0]["diagnostics"]
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}
    assert after["audit_events"] == before["audit_events"] + 1  # the refusal
    assert server.get(f"/fhir/List/{folder_id}", citizen(p)).json() == kept


def test_an_unknown_folder_and_another_organisations_are_refused_alike(server: Server) -> None:
    p = new_patient("Alma", "Ens")
    their_id, their_kept, _ = kept_folder(server, p, OTHER_CLINIC)
    answers = []
    for rid in (their_id, "no-such-folder"):
        tx = provide_bundle(note(p))
        update_folder(tx, rid, their_kept)
        r = post(server, tx)
        answers.append((r.status_code, r.json()["issue"][0]["code"], finding_codes(r.json()),
                        r.json()["issue"][0]["diagnostics"].replace(rid, "ID")))
    assert answers[0] == answers[1]
    assert answers[0][:2] == (403, "forbidden")
    tx = provide_bundle(note(p))
    update_folder(tx, their_id, their_kept)
    da = server.request("POST", "/fhir", source(), content=encode(tx),
                        headers={"Content-Type": FHIR_JSON, "Accept-Language": "da"})
    assert "din organisation har ingen mappe (Folder)" in da.json()["issue"][0]["diagnostics"]


def test_a_folder_update_is_stored_with_the_documents_or_not_at_all(server: Server) -> None:
    """The last document's identifier is taken: found when the store inserts it, after the Folder's new version is
    written in the same database transaction, which is rolled back."""
    p = new_patient("Alf", "Altellerintet")
    folder_id, kept, _ = kept_folder(server, p)
    server.shared(source(), note(p, name="taken-" + p.cpr, note_html="<p>Det første notat.</p>"))
    tx = provide_bundle(note(p), note(p, name="taken-" + p.cpr, note_html="<p>Et andet notat.</p>"))
    update_folder(tx, folder_id, kept)
    before = server.rows()
    r = post(server, tx)
    assert r.status_code == 409 and "XDSDuplicateUniqueIdInRegistry" in finding_codes(r.json()), r.text
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}
    assert server.get(f"/fhir/List/{folder_id}", citizen(p)).json() == kept
    assert "update-List" not in [a["action"] for a in audit_rows(server, p.cpr)]


def test_a_folder_update_sent_again_is_answered_as_the_first_time(server: Server) -> None:
    p = new_patient("Gert", "Gentaget")
    folder_id, kept, first_doc = kept_folder(server, p)
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)
    first = post(server, tx)
    assert first.status_code == 200, first.text
    folder = server.get(f"/fhir/List/{folder_id}", citizen(p)).json()
    before = server.rows()
    again = post(server, tx)  # the same bytes: the first answer was lost
    assert again.status_code == 200, again.text
    assert locations(again) == locations(first)
    assert again.json()["entry"][1]["response"] == first.json()["entry"][1]["response"]
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 4
    after = server.rows()
    assert {t: n for t, n in after.items() if t != "audit_events"} == \
        {t: n for t, n in before.items() if t != "audit_events"}
    assert server.get(f"/fhir/List/{folder_id}", citizen(p)).json() == folder  # still version 2
    assert folder["meta"]["versionId"] == "2"
    assert folder["entry"] == held([first_doc, first.json()["entry"][2]["resource"]["id"]])


def test_two_updates_of_a_folder_at_once_lose_nothing(server: Server) -> None:
    """Two transactions each add a document to the Folder as it was (version 1): the one stored second would take
    the first one's document out of the Folder, so it is refused, whether it was checked before the first was
    stored (XDSMetadataVersionError: the Folder has another version now) or after (the entry left out)."""
    from concurrent.futures import ThreadPoolExecutor

    p = new_patient("Samuel", "Samtidig")
    folder_id, kept, first_doc = kept_folder(server, p)
    txs = [provide_bundle(note(p)), provide_bundle(note(p))]
    for tx in txs:
        update_folder(tx, folder_id, kept)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda tx: post(server, tx), txs))
    assert sorted(a.status_code for a in answers) in ([200, 409], [200, 422]), [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200)
    lost = next(a for a in answers if a.status_code != 200)
    assert finding_codes(lost.json()) & {"XDSMetadataVersionError", "XDSMetadataUpdateOperationError"}
    folder = server.get(f"/fhir/List/{folder_id}", citizen(p)).json()
    assert folder["meta"]["versionId"] == "2"
    assert folder["entry"] == held([first_doc, won.json()["entry"][2]["resource"]["id"]])


def test_two_copies_of_a_folder_update_at_once_are_one_update(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    p = new_patient("Tvilling", "Mappe")
    folder_id, kept, _ = kept_folder(server, p)
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)
    before = server.rows()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: post(server, tx), range(2)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert locations(answers[0]) == locations(answers[1])
    assert locations(answers[0])[1] == f"{server.url}/fhir/List/{folder_id}/_history/2"
    after = server.rows()
    assert after["documents"] == before["documents"] + 1
    assert server.get(f"/fhir/List/{folder_id}", citizen(p)).json()["meta"]["versionId"] == "2"


def test_a_folder_that_got_another_version_meanwhile_is_not_overwritten(server: Server) -> None:
    """The store writes a Folder's next version only over the version it was checked against: an update checked
    against version 1 of a Folder at version 2 now (another submission stored in between, in another worker
    process) is refused and writes nothing, its audit record neither."""
    from kroniker.reference_server.audit import AuditRecord, load_or_create_key
    from kroniker.reference_server.store import ListChanged, ListUpdate, Store

    p = new_patient("Vera", "Version")
    folder_id, kept, _ = kept_folder(server, p)
    tx = provide_bundle(note(p))
    update_folder(tx, folder_id, kept)
    assert post(server, tx).status_code == 200
    now = server.get(f"/fhir/List/{folder_id}", citizen(p)).json()
    store = Store(server.engine, load_or_create_key(server.settings.audit_key_file))
    stale = {**kept, "meta": {"versionId": "2"}, "entry": []}
    before = server.rows()
    with pytest.raises(ListChanged):
        store.submit_many([], "", [], [ListUpdate(folder_id, "1", stale, AuditRecord("update-List", None))])
    assert server.rows() == before
    assert server.get(f"/fhir/List/{folder_id}", citizen(p)).json() == now


def test_a_folders_first_transaction_sent_again_after_documents_were_added_is_the_same(server: Server) -> None:
    """The Folder holds more now (added by a later submission): the transaction that made it, sent again, is
    still the same submission; the same SubmissionSet uniqueId with the Folder holding fewer of its documents is
    not."""
    p = new_patient("Freja", "Fortsat")
    tx = provide_bundle(note(p), note(p))
    add_folder(tx)
    first = post(server, tx)
    assert first.status_code == 200, first.text
    folder_id = path_of(locations(first)[1], server).removesuffix("/_history/1").rsplit("/", 1)[1]
    kept = server.get(f"/fhir/List/{folder_id}", citizen(p)).json()
    more = provide_bundle(note(p))
    update_folder(more, folder_id, kept)
    assert post(server, more).status_code == 200
    again = post(server, tx)
    assert again.status_code == 200, again.text
    assert locations(again) == locations(first)
    fewer = json.loads(json.dumps(tx))
    fewer["entry"][1]["resource"]["entry"] = fewer["entry"][1]["resource"]["entry"][:1]
    refused = post(server, fewer)
    assert refused.status_code == 409 and "XDSDuplicateUniqueIdInRegistry" in finding_codes(refused.json())
