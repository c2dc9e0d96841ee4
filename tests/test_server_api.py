"""The reference server's API as a GP-system vendor uses it over HTTP: ITI-65 submission (validated, atomic,
idempotent, replacement), the DocumentReference derived from the document, ITI-67 search and paging, ITI-68
retrieval byte for byte, and withdrawal as entered-in-error. On SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from kroniker.validators.validate import Validator
from tests import server_support as s
from tests.server_support import (
    ADMIN,
    CPR_SYSTEM,
    FHIR_JSON,
    FHIR_XML,
    GP_CLINIC,
    OTHER_CLINIC,
    SOR_SYSTEM,
    Patient,
    Server,
    card,
    citizen,
    composition,
    encode,
    entries,
    finding_codes,
    ids,
    is_outcome,
    new_patient,
    note,
    source,
)
from tests.xml_writer import to_xml

pytestmark = pytest.mark.network

SNOMED = "http://snomed.info/sct"


def contained(docref: dict[str, Any], reference: str) -> dict[str, Any]:
    assert reference.startswith("#"), f"{reference} is not a reference to a contained resource"
    return next(r for r in docref["contained"] if r["id"] == reference[1:])


def codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c["code"]) for c in concept["coding"]}


def identifier_values(resource: dict[str, Any], system: str) -> list[str]:
    return [i["value"] for i in resource.get("identifier", []) if i.get("system") == system]


# -- ITI-65: submission and the DocumentReference derived from it ----------------------------------------

def test_a_shared_note_is_described_by_the_metadata_dds_would_register(server: Server) -> None:
    patient = new_patient("Anna", "Ager")
    doc = note(patient, event_codes=[(SNOMED, "279039007")])
    body = encode(doc)
    r = server.submit(source(), body)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["resourceType"] == "DocumentReference"
    assert r.headers["location"] == f"{server.url}/fhir/DocumentReference/{d['id']}"
    assert d["status"] == "current"
    assert d["masterIdentifier"]["value"] == composition(doc)["identifier"]["value"]
    # spec/medcom-standards.md §14.2, Shared Notes
    assert {c for _, c in codes(d["category"][0])} == {"001"}
    assert (SNOMED, "866144008") in codes(d["type"])
    assert d["content"][0]["format"]["code"] == "urn:ad:dk:medcom:ecn-v1.0:full"
    assert {c for _, c in codes(d["context"]["facilityType"])} == {"394761003"}
    assert {c for _, c in codes(d["context"]["practiceSetting"])} == {"408443003"}
    assert [c["code"] for c in d["securityLabel"][0]["coding"]] == ["N"]
    attachment = d["content"][0]["attachment"]
    assert attachment["language"] == "da"
    assert attachment["contentType"] == FHIR_JSON
    assert attachment["title"] == f"Journalnotat for {patient.cpr}"
    assert attachment["creation"] == doc["timestamp"]
    assert attachment["size"] == len(body)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(body).digest()).decode()  # MHD: base64 SHA-1
    assert d["context"]["period"]["start"] == composition(doc)["event"][0]["period"]["start"]
    assert {(c.get("system"), c["code"]) for e in d["context"]["event"] for c in e["coding"]} == \
        {(SNOMED, "279039007")}
    subject = contained(d, d["subject"]["reference"])
    assert subject["resourceType"] == "Patient"
    assert identifier_values(subject, CPR_SYSTEM) == [patient.cpr]
    assert d["context"]["sourcePatientInfo"]["identifier"] == {"system": CPR_SYSTEM, "value": patient.cpr}
    authors = [contained(d, a["reference"]) for a in d["author"]]
    institution = next(a for a in authors if a["resourceType"] == "Organization")
    assert identifier_values(institution, SOR_SYSTEM) == [GP_CLINIC.sor]


def test_a_diagnosis_card_is_described_as_a_problem_list(server: Server) -> None:
    patient = new_patient("Bo", "Bakke")
    doc = card(patient)
    d = server.shared(source(), doc)
    assert {c for _, c in codes(d["type"])} == {"11450-4"}
    assert {c for _, c in codes(d["category"][0])} == {"001"}
    assert d["content"][0]["format"]["code"] == "urn:ad:dk:medcom:plr-v1.0:full"
    assert d["content"][0]["attachment"]["title"] == f"Diagnoseoversigt for {patient.cpr}"
    assert d["masterIdentifier"]["value"] == doc["identifier"]["value"]  # ConditionList: Bundle.identifier
    versions = [e.get("valueString") for e in d["extension"] if "version" in e["url"]]
    assert versions == ["1.0.0"]
    assert identifier_values(contained(d, d["subject"]["reference"]), CPR_SYSTEM) == [patient.cpr]


@pytest.mark.parametrize("kind", ["note", "card"])
def test_the_served_document_reference_conforms_to_medcoms_profile(server: Server, validator: Validator,
                                                                   kind: str) -> None:
    patient = new_patient("Cia", "Clausen")
    doc = note(patient) if kind == "note" else card(patient)
    d = server.shared(source(), doc)
    read = server.get(f"/fhir/DocumentReference/{d['id']}", citizen(patient))
    assert read.status_code == 200, read.text
    standard = validator.validate(encode(doc)).standard
    assert standard is not None
    profile = read.json()["meta"]["profile"][0]
    assert profile.startswith("http://medcomfhir.dk/ig/")
    report = validator.validate_resource(read.json(), profile, standard)
    assert report.valid, [f"{f.location}: {f.message('en')}" for f in report]


def test_an_invalid_document_is_refused_with_its_findings_and_nothing_is_stored(server: Server) -> None:
    patient = new_patient("Dorte", "Dal")
    doc = note(patient)
    composition(doc)["title"] = "Journalnotat"
    before = server.rows()
    r = server.submit(source(), doc, **{"Accept-Language": "da"})
    assert r.status_code == 422
    assert is_outcome(r)
    errors = [i for i in r.json()["issue"] if i["severity"] in ("error", "fatal")]
    assert errors
    title = next(i for i in errors if "COMP-TITLE" in {c["code"] for c in i["details"]["coding"]})
    assert "title" in title["expression"][0]
    assert "forventede" in title["diagnostics"] and f"Journalnotat for {patient.cpr}" in title["diagnostics"]
    after = server.rows()
    assert {t: after[t] - before[t] for t in after} == {
        "documents": 0, "document_events": 0, "treatment_relations": 0, "blocks": 0, "audit_events": 1,
        "clinical_resources": 0}
    assert s.entries(server.search(citizen(patient), patient).json()) == []


def test_the_identical_document_sent_again_is_stored_once(server: Server) -> None:
    patient = new_patient("Erik", "Eng")
    body = encode(note(patient))
    first = server.submit(source(), body)
    assert first.status_code == 201
    again = server.submit(source(), body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(entries(server.search(citizen(patient), patient).json())) == 1


def test_another_document_under_a_used_identifier_is_refused(server: Server) -> None:
    patient = new_patient("Frida", "Fjord")
    server.shared(source(), note(patient, name="frida-1"))
    before = server.rows()
    r = server.submit(source(), note(patient, name="frida-1", note_html="<p>Et andet notat.</p>"))
    assert r.status_code == 409
    assert "XDSDuplicateUniqueIdInRegistry" in finding_codes(r.json())
    assert server.rows()["documents"] == before["documents"]


@pytest.mark.parametrize("content_type", ["application/fhir+json; charset=utf-8", "application/json", None])
def test_a_json_document_is_accepted_under_the_usual_content_types(server: Server, content_type: str | None) -> None:
    patient = new_patient("Gunnar", "Gaard")
    headers = server.auth(source(), **({"Content-Type": content_type} if content_type else {}))
    r = server.client.post("/fhir/Bundle", content=encode(note(patient)), headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["content"][0]["attachment"]["contentType"] == FHIR_JSON


def test_a_document_with_xml_content_type_is_accepted(server: Server) -> None:
    patient = new_patient("Gorm", "Gade")
    body = to_xml(note(patient)).encode("utf-8")
    d = server.shared(source(), body, content_type=FHIR_XML)
    assert d["content"][0]["attachment"]["contentType"] == FHIR_XML
    assert d["content"][0]["attachment"]["size"] == len(body)


# -- replacement --------------------------------------------------------------------------------------------

def test_a_replacement_supersedes_the_old_document_and_both_stay_retrievable(server: Server) -> None:
    patient = new_patient("Hanne", "Hede")
    old_body = encode(note(patient, name=f"{patient.cpr}-v1"))
    old = server.shared(source(), old_body)
    new_body = encode(note(patient, name=f"{patient.cpr}-v2", note_html="<p>Rettet: NRS 3/10 i hvile.</p>",
                           updated="2026-11-20T10:30:00+01:00"))
    r = server.submit(source(), new_body, replaces=old["id"])
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] != old["id"]
    assert new["relatesTo"] == [{"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}]
    me = citizen(patient)
    assert server.get(f"/fhir/DocumentReference/{old['id']}", me).json()["status"] == "superseded"
    assert ids(server.search(me, patient, "current").json()) == {new["id"]}
    assert ids(server.search(me, patient, "superseded").json()) == {old["id"]}
    assert ids(server.search(me, patient, "current,superseded").json()) == {old["id"], new["id"]}
    for d, body in ((old, old_body), (new, new_body)):
        got = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(me))
        assert got.status_code == 200
        assert got.content == body


@pytest.mark.parametrize("problem", ["other patient", "already superseded", "unknown", "other organisation"])
def test_a_refused_replacement_changes_nothing(server: Server, problem: str) -> None:
    patient = new_patient("Ivan", "Ild")
    author = OTHER_CLINIC if problem == "other organisation" else GP_CLINIC
    old = server.shared(source(author), note(patient, author))
    target = old["id"]
    expected_status, expected_code = 422, "replace-other-patient"
    new_for: Patient = patient
    if problem == "other patient":
        new_for = new_patient("Jonna", "Jord")
    elif problem == "already superseded":
        server.shared(source(), note(patient), replaces=old["id"])
        expected_code = "replace-not-current"
    elif problem == "unknown":
        target, expected_status, expected_code = "no-such-document", 404, "replaced-not-found"
    else:
        expected_status, expected_code = 403, "replace-other-organisation"
    before = server.rows()
    status_before = server.status_of(old["id"])
    r = server.submit(source(), note(new_for), replaces=target)
    assert r.status_code == expected_status, r.text
    assert expected_code in finding_codes(r.json())
    after = server.rows()
    assert after["documents"] == before["documents"]
    assert after["document_events"] == before["document_events"]
    assert server.status_of(old["id"]) == status_before


def test_a_replacement_sent_again_is_answered_as_the_first(server: Server) -> None:
    patient = new_patient("Jakob", "Jagt")
    old = server.shared(source(), note(patient))
    body = encode(note(patient))
    first = server.submit(source(), body, replaces=old["id"])
    assert first.status_code == 201
    again = server.submit(source(), body, replaces=old["id"])
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


# -- ITI-67: search ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"status": "current"},
    {},
], ids=["no patient", "neither patient nor status"])
def test_a_search_must_name_the_patient(server: Server, params: dict[str, str]) -> None:
    patient = new_patient("Karen", "Kær")
    query = {k: (patient.identifier if v == "PATIENT" else v) for k, v in params.items()}
    r = server.get("/fhir/DocumentReference", citizen(patient), params=query)
    assert r.status_code == 400
    assert is_outcome(r)
    assert "XDSStoredQueryMissingParam" in finding_codes(r.json())


def test_the_patient_is_named_by_cpr_only(server: Server) -> None:
    patient = new_patient("Lars", "Lund")
    r = server.get("/fhir/DocumentReference", citizen(patient),
                   params={"patient.identifier": f"urn:oid:1.2.208.176.1.4|{patient.cpr}", "status": "current"})
    assert r.status_code == 400
    assert "patient-system" in finding_codes(r.json())


def test_a_patient_reference_finds_the_same_as_the_cpr_identifier(server: Server) -> None:
    patient = new_patient("Mona", "Mose")
    d = server.shared(source(), note(patient))
    r = server.get("/fhir/DocumentReference", citizen(patient),
                   params={"patient": f"Patient/{patient.cpr}", "status": "current"})
    assert r.status_code == 200
    assert ids(r.json()) == {d["id"]}


def test_search_parameters_select_documents(server: Server) -> None:
    patient = new_patient("Niels", "Nor")
    lbp = server.shared(source(), note(patient, event_codes=[(SNOMED, "279039007")]))
    plain = server.shared(source(), note(patient))
    dk = server.shared(source(), card(patient))
    other_org = server.shared(source(OTHER_CLINIC), note(patient, OTHER_CLINIC))
    me = citizen(patient)

    def found(**params: str) -> set[str]:
        r = server.search(me, patient, **params)
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "searchset"
        return ids(r.json())

    everything = {lbp["id"], plain["id"], dk["id"], other_org["id"]}
    assert found() == everything
    assert found(type=f"{SNOMED}|866144008") == everything - {dk["id"]}
    assert found(type="11450-4") == {dk["id"]}
    assert found(type=f"{SNOMED}|11450-4") == set()
    served_card_type = dk["type"]["coding"][0]
    assert found(type=f"{served_card_type['system']}|11450-4") == {dk["id"]}
    assert found(category="001") == everything
    assert found(category="999") == set()
    assert found(**{"author.identifier": f"{SOR_SYSTEM}|{OTHER_CLINIC.sor}"}) == {other_org["id"]}
    assert found(**{"author.identifier": f"{SOR_SYSTEM}|{GP_CLINIC.sor}"}) == everything - {other_org["id"]}
    assert found(event=f"{SNOMED}|279039007") == {lbp["id"]}
    assert found(event="279039007") == {lbp["id"]}
    assert found(event=f"{SNOMED}|1234567") == set()
    today = dt.datetime.now(dt.UTC).date()
    assert found(date=f"ge{today.isoformat()}") == everything
    assert found(date=f"lt{today.isoformat()}") == set()
    assert found(date=f"ge{(today + dt.timedelta(days=2)).isoformat()}") == set()


def test_a_search_is_paged_and_the_next_links_visit_every_document(server: Server) -> None:
    patient = new_patient("Olga", "Os")
    made = {server.shared(source(), note(patient))["id"] for _ in range(5)}
    seen: list[str] = []
    r = server.search(citizen(patient), patient, _count="2")
    pages = 0
    while True:
        bundle = r.json()
        pages += 1
        assert bundle["total"] == 5
        assert len(entries(bundle)) <= 2
        seen += [d["id"] for d in entries(bundle)]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        assert pages < 5, "the next links do not end"
        r = server.client.get(nxt[0], headers=server.auth(citizen(patient)))
        assert r.status_code == 200
    assert pages == 3
    assert sorted(seen) == sorted(made)


def test_the_next_link_repeats_the_whole_query(server: Server) -> None:
    patient = new_patient("Pil", "Pind")
    for _ in range(2):
        server.shared(source(), note(patient))
    today = dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()  # date searches count Danish days
    dates = [f"ge{today - dt.timedelta(days=1)}", f"lt{today + dt.timedelta(days=1)}"]
    query = [("patient.identifier", patient.identifier), ("status", "current"), ("_count", "1"),
             *[("date", d) for d in dates]]
    bundle = server.get("/fhir/DocumentReference", citizen(patient), params=query).json()
    [nxt] = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    asked = httpx.URL(nxt).params
    assert sorted(asked.get_list("date")) == sorted(dates)
    assert asked["patient.identifier"] == patient.identifier


def test_offset_starts_a_page_further_on(server: Server) -> None:
    patient = new_patient("Per", "Pil")
    for _ in range(3):
        server.shared(source(), note(patient))
    every = [d["id"] for d in entries(server.search(citizen(patient), patient).json())]
    page = entries(server.search(citizen(patient), patient, _count="1", _offset="2").json())
    assert [d["id"] for d in page] == every[2:3]


def test_a_negative_page_size_is_refused(server: Server) -> None:
    patient = new_patient("Rita", "Ris")
    for _ in range(3):
        server.shared(source(), note(patient))
    r = server.search(citizen(patient), patient, _count="-1")
    assert r.status_code == 400
    assert is_outcome(r)


def test_a_count_only_search_has_no_next_page(server: Server) -> None:
    patient = new_patient("Sif", "Sø")
    for _ in range(2):
        server.shared(source(), note(patient))
    bundle = server.search(citizen(patient), patient, _count="0").json()
    assert bundle["total"] == 2
    assert entries(bundle) == []
    assert [link for link in bundle["link"] if link["relation"] == "next"] == []


def test_search_by_post_answers_as_search_by_get(server: Server) -> None:
    patient = new_patient("Tove", "Tang")
    d = server.shared(source(), note(patient))
    r = server.client.post("/fhir/DocumentReference/_search", headers=server.auth(citizen(patient)),
                           data={"patient.identifier": patient.identifier, "status": "current"})
    assert r.status_code == 200, r.text
    assert ids(r.json()) == {d["id"]}
    missing = server.client.post("/fhir/DocumentReference/_search", headers=server.auth(citizen(patient)),
                                 data={"status": "current"})
    assert missing.status_code == 400


# -- ITI-68: retrieval -------------------------------------------------------------------------------------------

def test_a_json_document_comes_back_byte_for_byte(server: Server) -> None:
    patient = new_patient("Ulla", "Ure")
    # Pretty-printed, non-ASCII as is, odd spacing: a re-serialised document would differ.
    body = json.dumps(note(patient), ensure_ascii=False, indent=3).replace('": ', '":  ').encode("utf-8")
    d = server.shared(source(), body)
    url = d["content"][0]["attachment"]["url"]
    assert url.startswith(server.url)
    r = server.client.get(url, headers=server.auth(citizen(patient)))
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["content-type"].startswith(FHIR_JSON)


def test_an_xml_document_comes_back_byte_for_byte(server: Server) -> None:
    patient = new_patient("Vera", "Vang")
    declaration, _, rest = to_xml(note(patient)).partition("\n")
    tabbed = rest.replace("  ", "\t")  # the vendor's own indentation
    body = f"{declaration}\n<!-- fra lægesystemet -->\n{tabbed}".encode()
    d = server.shared(source(), body, content_type=FHIR_XML)
    r = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(citizen(patient)))
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["content-type"].startswith(FHIR_XML)


def test_the_content_type_served_is_the_documents_own(server: Server) -> None:
    patient = new_patient("Willy", "Vig")
    body = to_xml(note(patient)).encode("utf-8")
    r = server.submit(source(), body, content_type=FHIR_JSON)
    if r.status_code != 201:  # refusing the mislabelled document is as good as recording the truth
        assert is_outcome(r)
        return
    assert r.json()["content"][0]["attachment"]["contentType"] == FHIR_XML
    got = server.client.get(r.json()["content"][0]["attachment"]["url"], headers=server.auth(citizen(patient)))
    assert got.headers["content-type"].startswith(FHIR_XML)


def test_an_unknown_document_is_not_found(server: Server) -> None:
    patient = new_patient("Yrsa", "Yde")
    for path in ("/fhir/Bundle/no-such-document", "/fhir/DocumentReference/no-such-document"):
        r = server.get(path, citizen(patient))
        assert r.status_code == 404
        assert is_outcome(r)


# -- entered-in-error ----------------------------------------------------------------------------------------

def test_a_document_entered_in_error_is_gone(server: Server) -> None:
    patient = new_patient("Åge", "Ås")
    d = server.shared(source(), note(patient))
    r = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN,
                       json={"status": "entered-in-error", "reason": "notatet hørte til en anden patient"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "entered-in-error"
    me = citizen(patient)
    gone = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(me))
    assert gone.status_code == 410
    assert is_outcome(gone)
    assert ids(server.search(me, patient).json()) == set()
    # It cannot be replaced either: it is not current.
    again = server.submit(source(), note(patient), replaces=d["id"])
    assert again.status_code == 422


@pytest.mark.parametrize("body", [
    {"status": "entered-in-error"},
    {"status": "entered-in-error", "reason": "  "},
    {"status": "superseded", "reason": "forkert"},
    {"status": "current", "reason": "fortrudt"},
])
def test_withdrawal_needs_the_status_and_a_reason(server: Server, body: dict[str, str]) -> None:
    patient = new_patient("Ærbar", "Æble")
    d = server.shared(source(), note(patient))
    r = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN, json=body)
    assert r.status_code == 400
    assert is_outcome(r)
    assert server.status_of(d["id"]) == "current"


def test_withdrawing_an_unknown_document_is_not_found(server: Server) -> None:
    r = server.request("PATCH", "/fhir/DocumentReference/no-such-document", ADMIN,
                       json={"status": "entered-in-error", "reason": "test"})
    assert r.status_code == 404
    assert is_outcome(r)


# -- public endpoints -------------------------------------------------------------------------------------------

def test_the_capability_statement_is_public_and_names_the_search_parameters(server: Server) -> None:
    r = server.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    docref = next(x for x in cs["rest"][0]["resource"] if x["type"] == "DocumentReference")
    assert {p["name"] for p in docref["searchParam"]} >= {
        "patient", "patient.identifier", "status", "type", "category", "date", "author.identifier", "event"}
    assert server.get("/health").status_code == 200
