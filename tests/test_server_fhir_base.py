"""The FHIR base as a client finds it: [base]/metadata, a CapabilityStatement that says what the served routes
are (derived here from the routes by FHIR's RESTful API rules, not from the server's table), and one way of
searching and paging on every search route (status defaults to current; _count, _offset, _sort, Bundle.total,
self/next/previous links)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kroniker.reference_server.app import create_app, routes_of
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.tokens import ROLES
from kroniker.validators.packages import PackageCache
from tests.server_support import (
    ADMIN,
    Server,
    citizen,
    entries,
    finding_codes,
    ids,
    is_outcome,
    new_patient,
    note,
    source,
)

pytestmark = pytest.mark.network


def fhir_interaction(method: str, path: str) -> tuple[str, str] | None:
    """(resource type, interaction) of a route under [base] = /fhir, by FHIR R4's RESTful API (http.html)."""
    t = r"(?P<type>[A-Z][A-Za-z]+)"
    rules = [("GET", rf"/fhir/{t}", "search-type"), ("POST", rf"/fhir/{t}/_search", "search-type"),
             ("POST", rf"/fhir/{t}", "create"), ("GET", rf"/fhir/{t}/\{{id\}}", "read"),
             ("PUT", rf"/fhir/{t}/\{{id\}}", "update"), ("PATCH", rf"/fhir/{t}/\{{id\}}", "patch"),
             ("DELETE", rf"/fhir/{t}/\{{id\}}", "delete"),
             ("GET", rf"/fhir/{t}/\{{id\}}/_history/\{{vid\}}", "vread"),
             ("GET", rf"/fhir/{t}/\{{id\}}/_history", "history-instance")]
    operation = re.fullmatch(rf"/fhir/{t}/\$(?P<name>[a-z][a-z-]*)", path)
    if method == "POST" and operation:
        return operation["type"], f"${operation['name']}"  # a type-level operation (operations.html)
    if method == "POST" and path in ("/fhir", "/fhir/"):
        return "system", "transaction"  # or batch; this server takes transactions
    for m, pattern, interaction in rules:
        found = re.fullmatch(pattern, path)
        if m == method and found:
            return found["type"], interaction
    return None


def listed(cs: dict) -> set[tuple[str, str]]:
    rest = cs["rest"][0]
    return {(r["type"], i["code"]) for r in rest["resource"] for i in r["interaction"]} | {
        ("system", i["code"]) for i in rest.get("interaction", [])} | {
        (r["type"], f"${o['name']}") for r in rest["resource"] for o in r.get("operation", [])}


def test_the_capability_statement_lists_every_fhir_route_served_and_nothing_else(
        server: Server, tmp_path: Path, package_cache: PackageCache) -> None:
    served = routes_of(create_app(Settings(home=tmp_path, package_cache=package_cache.root)))
    fhir_routes = {(m, p) for m, p in served if p.startswith("/fhir") and p != "/fhir/metadata"}
    expected = {fhir_interaction(m, p) for m, p in fhir_routes}
    assert None not in expected, f"a route under /fhir that is no FHIR interaction: {sorted(fhir_routes)}"
    r = server.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert listed(cs) == expected
    # The old path answers the same statement.
    assert listed(server.get("/metadata").json()) == expected


def test_the_capability_statement_says_how_to_authenticate_and_which_roles_there_are(server: Server) -> None:
    security = server.get("/fhir/metadata").json()["rest"][0]["security"]
    assert [c["code"] for s in security["service"] for c in s["coding"]] == ["OAuth"]
    assert "Bearer" in security["description"]
    for role in ROLES:
        assert role in security["description"]


def test_the_capability_statement_names_the_formats_answered(server: Server) -> None:
    cs = server.get("/fhir/metadata").json()
    # Both of FHIR's formats are served on every FHIR route (tests/test_server_xml.py), nothing else.
    assert set(cs["format"]) == {"json", "xml", "application/fhir+json", "application/fhir+xml"}
    assert server.get("/fhir/metadata").headers["content-type"].startswith("application/fhir+json")


def test_the_capability_statement_names_each_search_parameter_of_each_search_route(server: Server) -> None:
    cs = server.get("/fhir/metadata").json()
    params = {r["type"]: {p["name"] for p in r.get("searchParam", [])} for r in cs["rest"][0]["resource"]}
    # ITI-67's parameters (MHD 4.2 §2:3.67.4.1.2.1) that this server supports, and FHIR's paging
    assert params["DocumentReference"] >= {"patient", "patient.identifier", "status", "type", "category", "date",
                                           "author.identifier", "event", "_count", "_offset", "_sort"}
    assert params["AuditEvent"] >= {"_count", "_offset", "_sort"}


def test_every_listed_search_route_answers_the_right_role(server: Server) -> None:
    patient = new_patient("Vera", "Vang")
    server.shared(source(), note(patient))
    assert server.search(citizen(patient), patient).status_code == 200
    assert server.get("/fhir/AuditEvent", ADMIN).status_code == 200


# -- search: status defaults to current ----------------------------------------------------------------------

def test_a_search_without_status_finds_the_current_documents(server: Server) -> None:
    patient = new_patient("Ulla", "Ulv")
    old = server.shared(source(), note(patient, name=f"{patient.cpr}-v1"))
    r = server.submit(source(), note(patient, name=f"{patient.cpr}-v2", updated="2026-11-20T10:30:00+01:00"),
                      replaces=old["id"])
    assert r.status_code == 201, r.text
    new = r.json()
    me = citizen(patient)
    assert ids(server.search(me, patient, status=None).json()) == {new["id"]}
    assert ids(server.search(me, patient, status="superseded").json()) == {old["id"]}


def test_a_search_must_still_name_the_patient(server: Server) -> None:
    patient = new_patient("Yrsa", "Yde")
    r = server.get("/fhir/DocumentReference", citizen(patient), params={"status": "current"})
    assert r.status_code == 400
    assert "XDSStoredQueryMissingParam" in finding_codes(r.json())


# -- paging: the same on every search route ------------------------------------------------------------------

def links(bundle: dict) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def test_documents_are_sorted_by_date_either_way(server: Server) -> None:
    patient = new_patient("Åse", "Å")
    made = [server.shared(source(), note(patient))["id"] for _ in range(3)]  # registered in this order
    me = citizen(patient)
    assert [d["id"] for d in entries(server.search(me, patient, _sort="date").json())] == made
    assert [d["id"] for d in entries(server.search(me, patient, _sort="-date").json())] == made[::-1]
    assert [d["id"] for d in entries(server.search(me, patient).json())] == made[::-1]


def test_an_unknown_sort_is_refused(server: Server) -> None:
    patient = new_patient("Øjvind", "Ø")
    for path, who, params in (("/fhir/DocumentReference", citizen(patient),
                               {"patient.identifier": patient.identifier, "_sort": "title"}),
                              ("/fhir/AuditEvent", ADMIN, {"_sort": "title"})):
        r = server.get(path, who, params=params)
        assert r.status_code == 400, path
        assert is_outcome(r)


def test_previous_links_walk_back_over_the_same_pages(server: Server) -> None:
    patient = new_patient("Bodil", "Bæk")
    for _ in range(5):
        server.shared(source(), note(patient))
    me = citizen(patient)
    forward: list[list[str]] = []
    url: str | None = None
    bundle = server.search(me, patient, _count="2").json()
    assert "previous" not in links(bundle)
    while True:
        forward.append([d["id"] for d in entries(bundle)])
        url = links(bundle).get("next")
        if url is None:
            break
        bundle = server.client.get(url, headers=server.auth(me)).json()
    assert [len(p) for p in forward] == [2, 2, 1]
    backward = [[d["id"] for d in entries(bundle)]]
    while "previous" in links(bundle):
        bundle = server.client.get(links(bundle)["previous"], headers=server.auth(me)).json()
        backward.append([d["id"] for d in entries(bundle)])
    assert backward[::-1] == forward
    again = server.client.get(links(bundle)["self"], headers=server.auth(me)).json()
    assert [d["id"] for d in entries(again)] == forward[0]


def test_the_audit_log_pages_and_sorts_as_the_document_search_does(server: Server) -> None:
    patient = new_patient("Dorte", "Dal")
    me = citizen(patient)
    server.shared(source(), note(patient))
    for _ in range(3):  # look-ups by the citizen: audit records about this patient, in this order
        server.search(me, patient)
    q = {"patient.identifier": patient.identifier}
    everything = server.get("/fhir/AuditEvent", ADMIN, params=q).json()
    total = everything["total"]
    assert total >= 4
    newest = [e["resource"]["id"] for e in everything["entry"]]
    oldest = [e["resource"]["id"] for e in server.get("/fhir/AuditEvent", ADMIN,
                                                      params={**q, "_sort": "date"}).json()["entry"]]
    # The admin's own look-ups are recorded about this patient too: each adds one record at the newest end.
    assert oldest[:total] == newest[::-1]
    page = server.get("/fhir/AuditEvent", ADMIN, params={**q, "_sort": "date", "_count": "2", "_offset": "2"}).json()
    assert [e["resource"]["id"] for e in page["entry"]] == oldest[2:4]
    assert set(links(page)) >= {"self", "previous", "next"}
    back = server.client.get(links(page)["previous"], headers=server.auth(ADMIN)).json()
    assert [e["resource"]["id"] for e in back["entry"]] == oldest[0:2]
    assert back["total"] > total


# -- versions: meta.versionId, ETag, vread, _history ------------------------------------------------------------

def test_a_document_reference_is_version_1_until_its_status_changes(server: Server) -> None:
    patient = new_patient("Gitte", "Gran")
    me = citizen(patient)
    old = server.shared(source(), note(patient, name=f"{patient.cpr}-v1"))
    assert old["meta"]["versionId"] == "1"
    assert old["meta"]["lastUpdated"]
    r = server.get(f"/fhir/DocumentReference/{old['id']}", me)
    assert r.headers["etag"] == 'W/"1"'
    new = server.submit(source(), note(patient, name=f"{patient.cpr}-v2", updated="2026-11-20T10:30:00+01:00"),
                        replaces=old["id"]).json()
    assert new["meta"]["versionId"] == "1"
    r = server.get(f"/fhir/DocumentReference/{old['id']}", me)
    assert (r.json()["status"], r.json()["meta"]["versionId"], r.headers["etag"]) == ("superseded", "2", 'W/"2"')
    assert r.json()["meta"]["lastUpdated"] >= old["meta"]["lastUpdated"]
    v1 = server.get(f"/fhir/DocumentReference/{old['id']}/_history/1", me)
    assert v1.status_code == 200
    assert (v1.json()["status"], v1.json()["meta"]["versionId"], v1.headers["etag"]) == ("current", "1", 'W/"1"')
    v2 = server.get(f"/fhir/DocumentReference/{old['id']}/_history/2", me).json()
    assert v2["status"] == "superseded"
    missing = server.get(f"/fhir/DocumentReference/{old['id']}/_history/3", me)
    assert missing.status_code == 404
    assert is_outcome(missing)
    history = server.get(f"/fhir/DocumentReference/{old['id']}/_history", me).json()
    assert history["type"] == "history"
    assert [(e["resource"]["meta"]["versionId"], e["resource"]["status"]) for e in history["entry"]] == [
        ("2", "superseded"), ("1", "current")]


def test_withdrawal_is_a_new_version(server: Server) -> None:
    patient = new_patient("Hugo", "Hald")
    d = server.shared(source(), note(patient))
    r = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN,
                       json={"status": "entered-in-error", "reason": "forkert patient"})
    assert r.status_code == 200, r.text
    assert (r.json()["meta"]["versionId"], r.headers["etag"]) == ("2", 'W/"2"')


def test_another_patients_document_history_is_not_found(server: Server) -> None:
    patient, other = new_patient("Iben", "Ilsø"), new_patient("Jens", "Juul")
    d = server.shared(source(), note(patient))
    for path in (f"/fhir/DocumentReference/{d['id']}/_history", f"/fhir/DocumentReference/{d['id']}/_history/1"):
        r = server.get(path, citizen(other))
        assert r.status_code == 404, path
        assert is_outcome(r)


# -- the create paths clients use ------------------------------------------------------------------------------

def transaction(document: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:2f3c4d5e-0000-4000-8000-000000000001", "resource": document,
         "request": {"method": "POST", "url": "Bundle"}}]}


def test_a_transaction_with_one_document_is_stored_and_answered_as_a_transaction_response(server: Server) -> None:
    patient = new_patient("Kaj", "Kær")
    r = server.request("POST", "/fhir", source(), json=transaction(note(patient)),
                       headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "transaction-response"
    [entry] = bundle["entry"]
    assert entry["response"]["status"].startswith("201")
    location = entry["response"]["location"]
    read = server.client.get(location, headers=server.auth(citizen(patient)))
    assert read.status_code == 200
    assert read.json()["id"] == entry["resource"]["id"]
    assert ids(server.search(citizen(patient), patient).json()) == {entry["resource"]["id"]}


def test_a_document_posted_to_the_base_is_stored_as_by_post_bundle(server: Server) -> None:
    patient = new_patient("Lene", "Lyng")
    r = server.request("POST", "/fhir", source(), json=note(patient), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201, r.text
    assert r.json()["resourceType"] == "DocumentReference"
    assert r.headers["etag"] == 'W/"1"'


@pytest.mark.parametrize("shape", ["two entries", "PUT", "not a document"])
def test_a_transaction_of_another_shape_is_refused_and_stores_nothing(server: Server, shape: str) -> None:
    patient = new_patient("Mads", "Mølle")
    body = transaction(note(patient))
    if shape == "two entries":
        body["entry"].append(transaction(note(patient))["entry"][0])
    elif shape == "PUT":
        body["entry"][0]["request"] = {"method": "PUT", "url": "Bundle/x"}
    else:
        body["entry"][0]["resource"]["type"] = "collection"
    r = server.request("POST", "/fhir", source(), json=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400
    assert is_outcome(r)
    assert ids(server.search(citizen(patient), patient, status="current,superseded").json()) == set()


def test_a_transaction_with_an_invalid_document_stores_nothing(server: Server) -> None:
    patient = new_patient("Nina", "Näs")
    doc = note(patient)
    doc["entry"][0]["resource"]["status"] = "not-a-status"
    r = server.request("POST", "/fhir", source(), json=transaction(doc),
                       headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 422
    assert is_outcome(r)
    assert ids(server.search(citizen(patient), patient, status="current,superseded").json()) == set()
