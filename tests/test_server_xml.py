"""FHIR XML in and out on every FHIR route (issue 14, item 3): the same resources and answers as JSON.

FHIR's rules (http://hl7.org/fhir/R4/http.html#mime-type, xml.html): `_format` overrides `Accept`; the XML
answer is `application/fhir+xml` and holds what the JSON answer holds, with the same status and headers; an XML
body gives what the same body in JSON gives. Every route under the FHIR base is taken from the route table, so a
new route without an XML case here fails `test_every_fhir_route_answers_json_and_xml_alike`. Each XML answer is
parsed by lxml with DTDs off, converted back by the validator's XML reader (validators/xmlreader.py), checked
against the XSD generated from the R4 structures (no finding), and compared with the JSON answer. Values
that differ between two calls by nature — a search Bundle's fresh id, the audit log's growing total, the ids a
create makes — are the only ones set aside, each where it arises.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from lxml import etree

from kroniker.reference_server.app import ROUTES
from kroniker.reference_server.formats import is_fhir_path
from kroniker.validators.packages import PackageCache
from kroniker.validators.source import Limits
from kroniker.validators.xmlreader import parse_xml
from tests.clinical_support import assessment, patient_response
from tests.mhd_support import add_folder, add_patient, provide_bundle, update_folder
from tests.server_support import (
    ADMIN,
    CPR_SYSTEM,
    FHIR_JSON,
    FHIR_XML,
    GP_CLINIC,
    TABLES,
    Patient,
    Server,
    citizen,
    encode,
    finding_codes,
    new_patient,
    note,
    server_for,
    source,
)
from tests.xml_writer import to_xml

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
SAFE = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False, huge_tree=False)
XML_WAYS = ("accept", "format")  # asking for XML by Accept, and by _format (which overrides a JSON Accept)


@pytest.fixture(scope="module")
def cache(care_package_cache: PackageCache) -> PackageCache:
    return care_package_cache


@pytest.fixture(scope="module", params=["sqlite"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           cache: PackageCache) -> Iterator[Server]:
    with server_for(request, tmp_path_factory, cache) as srv:
        yield srv


@pytest.fixture(scope="module", params=["postgresql"])
def pg_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              cache: PackageCache) -> Iterator[Server]:
    with server_for(request, tmp_path_factory, cache) as srv:
        yield srv


# -- the world the routes are asked about ----------------------------------------------------------------------

def about(resource: dict[str, Any], p: Patient) -> dict[str, Any]:
    resource["subject"] = {"identifier": {"system": CPR_SYSTEM, "value": p.cpr}}
    return resource


@dataclass
class World:
    p: Patient
    doc_json: dict[str, Any]  # the DocumentReference of a document submitted as JSON
    doc_xml: dict[str, Any]  # ... and of one submitted as XML
    response: str
    observation: str
    suggestion: str
    submission_set: str  # the List of an ITI-65 submission
    folder: str  # ... and the Folder List it made

    @property
    def ident(self) -> str:
        return f"{CPR_SYSTEM}|{self.p.cpr}"


def make_world(server: Server) -> World:
    p = new_patient("Xenia", "Xml")
    server.relate(p, organisation=GP_CLINIC.sor, evidence="assigned-gp")
    doc_json = server.shared(source(), note(p))
    doc_xml = server.shared(source(), to_xml(note(p)).encode("utf-8"), content_type=FHIR_XML)
    r = server.request("POST", "/fhir/QuestionnaireResponse", citizen(p), json=about(patient_response(), p))
    assert r.status_code == 201, r.text
    response = r.json()["id"]
    observations = server.get("/fhir/Observation", source(), params={"patient.identifier": f"{CPR_SYSTEM}|{p.cpr}"})
    observation = observations.json()["entry"][0]["resource"]["id"]
    r = server.request("POST", "/fhir/ClinicalImpression/$triage", source(), json=about(assessment(cpr=p.cpr), p))
    assert r.status_code == 201, r.text
    suggestion = r.json()["id"]
    tx = provide_bundle(note(p))
    add_folder(tx)
    r = server.request("POST", "/fhir", source(), content=encode(tx),
                       headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    assert r.status_code == 200, r.text
    # [base]/List/{id}/_history/1: the SubmissionSet's, then the Folder's
    set_at, folder_at = (e["response"]["location"] for e in r.json()["entry"][:2])
    assert "/fhir/List/" in set_at and "/fhir/List/" in folder_at, (set_at, folder_at)
    return World(p, doc_json, doc_xml, response, observation, suggestion,
                 set_at.split("/fhir/List/")[1].split("/")[0], folder_at.split("/fhir/List/")[1].split("/")[0])


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    return make_world(server)


# -- reading an XML answer ---------------------------------------------------------------------------------------

def from_xml(r: httpx.Response) -> dict[str, Any]:
    """An XML answer as its JSON form: served as FHIR XML, read with DTDs off, no finding of the XML reader or
    the generated R4 schema, converted by FHIR's XML rules."""
    assert r.headers["content-type"] == "application/fhir+xml; charset=utf-8", r.headers
    root = etree.fromstring(r.content, SAFE)
    assert root.getroottree().docinfo.doctype == ""
    assert etree.QName(root).namespace == FHIR_NS
    parsed = parse_xml("<answer>", r.content, Limits())
    assert parsed.findings == [], [f.message() for f in parsed.findings]
    return canonical(parsed.data)


def from_json(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith(FHIR_JSON), r.headers
    return canonical(r.json())


def canonical(data: Any) -> Any:
    """The narrative compared as XHTML (canonical XML), not as the characters that spell it."""
    if isinstance(data, dict):
        return {k: (_c14n(v) if k == "div" and isinstance(v, str) else canonical(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [canonical(v) for v in data]
    return data


def _c14n(div: str) -> str:
    return etree.tostring(etree.fromstring(div.encode("utf-8"), SAFE), method="c14n").decode()


def as_xml(way: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
           ) -> tuple[dict[str, str], dict[str, str]]:
    """Query and headers asking for XML: by Accept, or by _format over an Accept that asks for JSON."""
    params, headers = dict(params or {}), dict(headers or {})
    if way == "accept":
        headers["Accept"] = FHIR_XML
    else:
        params["_format"] = "xml"
        headers["Accept"] = FHIR_JSON
    return params, headers


def same_headers(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code
    for name in ("etag", "last-modified"):
        assert a.headers.get(name) == b.headers.get(name), name


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


# -- the cases: one per FHIR route ------------------------------------------------------------------------------

Case = Callable[[Server, World, str], None]


def read_case(path: Callable[[World], str], who: Callable[[World], Any],
              params: Callable[[World], dict[str, str]] = lambda w: {}, volatile: tuple[str, ...] = ()) -> Case:
    """A GET: the XML answer is the JSON answer (top-level `volatile` keys aside: a search Bundle's fresh id)."""
    def case(server: Server, w: World, way: str) -> None:
        plain = server.get(path(w), who(w), params=params(w), headers={"Accept": FHIR_JSON})
        assert plain.status_code == 200, plain.text
        query, headers = as_xml(way, params(w))
        got = server.get(path(w), who(w), params=query, headers=headers)
        same_headers(plain, got)
        expected, answer = from_json(plain), from_xml(got)
        if way == "format":  # the links repeat the query, _format with it
            answer = json.loads(json.dumps(answer).replace("&_format=xml", "").replace("_format=xml&", ""))
        assert without(answer, *volatile) == without(expected, *volatile)
    return case


def created(server: Server, r: httpx.Response, reader: Any) -> dict[str, Any]:
    """The resource a create answered in XML is the one now stored: its JSON read equals the converted answer."""
    assert r.status_code in (200, 201), r.text
    answer = from_xml(r)
    stored = server.get(r.headers["location"], reader, headers={"Accept": FHIR_JSON})
    assert stored.status_code == 200, stored.text
    read = from_json(stored)
    assert answer == read  # meta.versionId and lastUpdated included: a create answers what a read gives
    return answer


def ids_out(data: Any) -> Any:
    """A created resource with what is new in each create (its server ids, uuids and registration instants)
    set aside: what is left must be the same whether the body came as JSON or XML."""
    text = json.dumps(data, sort_keys=True)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"[0-9a-f]{32}", "<hex>", text)
    text = re.sub(r'"lastUpdated": "[^"]*"', '"lastUpdated": "<now>"', text)
    return json.loads(text)


def create_case(path: str, who: Callable[[World], Any], body: Callable[[World], dict[str, Any]],
                xml_body: Callable[[World], bytes] | None = None) -> Case:
    """A POST with a FHIR body, as JSON and as XML (body and answer): the same result."""
    def case(server: Server, w: World, way: str) -> None:
        plain = server.request("POST", path, who(w), content=encode(body(w)),
                               headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        assert plain.status_code in (200, 201), plain.text
        query, headers = as_xml(way, headers={"Content-Type": FHIR_XML})
        raw = xml_body(w) if xml_body else to_xml(body(w)).encode("utf-8")
        got = server.request("POST", path, who(w), content=raw, params=query, headers=headers)
        assert got.status_code == plain.status_code, got.text
        answer = created(server, got, who(w)) if "location" in got.headers else from_xml(got)
        assert ids_out(answer) == ids_out(from_json(plain))
    return case


def document_case(path: str) -> Case:
    """A document posted as XML, answered in XML: the same DocumentReference as for the document in JSON
    (but for the new document's own identifiers, its size and hash, and the attachment's content type)."""
    def case(server: Server, w: World, way: str) -> None:
        query, headers = as_xml(way, headers={"Content-Type": FHIR_XML})
        if path == "/fhir/Bundle":
            plain = server.request("POST", path, source(), content=encode(note(w.p)),
                                   headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
            xml_doc = to_xml(note(w.p)).encode("utf-8")
            got = server.request("POST", path, source(), content=xml_doc, params=query, headers=headers)
            assert got.status_code == plain.status_code == 201, got.text
            answer, expected = created(server, got, citizen(w.p)), from_json(plain)
        else:  # the transaction: its answer's entry holds the DocumentReference
            plain = server.request("POST", path, source(), content=encode(transaction(note(w.p))),
                                   headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
            got = server.request("POST", path, source(), content=to_xml(transaction(note(w.p))).encode(),
                                 params=query, headers=headers)
            assert got.status_code == plain.status_code == 200, got.text
            answer, expected = from_xml(got), from_json(plain)
            assert answer["type"] == expected["type"] == "transaction-response"
            stored = server.get(answer["entry"][0]["response"]["location"], citizen(w.p),
                                headers={"Accept": FHIR_JSON})
            assert answer["entry"][0]["resource"] == from_json(stored)
            answer, expected = answer["entry"][0]["resource"], expected["entry"][0]["resource"]
        docref_apart(answer, expected)
    return case


def docref_apart(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    """Two documents' DocumentReferences, one sent as XML, one as JSON: the same but for the new document's own
    identifiers, its bytes' size and hash, and the attachment's content type (which says how it came)."""
    attachment, expected_attachment = answer["content"][0]["attachment"], expected["content"][0]["attachment"]
    assert attachment["contentType"] == FHIR_XML and expected_attachment["contentType"] == FHIR_JSON
    for a in (attachment, expected_attachment):
        for k in ("contentType", "size", "hash"):
            a.pop(k)
    for d in (answer, expected):
        d.pop("masterIdentifier")
    assert ids_out(answer) == ids_out(expected)


def put_case(server: Server, w: World, way: str) -> None:
    """PUT [base]/Bundle/{id} answers with the document as stored: a document PUT as XML comes back as that
    XML; one PUT as JSON comes back converted when XML is asked; both hold the document that was sent."""
    doc_json, doc_xml = note(w.p), note(w.p)
    plain = server.request("PUT", f"/fhir/Bundle/{doc_json['id']}", source(), content=encode(doc_json),
                           headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    assert plain.status_code == 201, plain.text
    assert from_json(plain) == canonical(doc_json)
    query, headers = as_xml(way, headers={"Content-Type": FHIR_XML})
    sent = to_xml(doc_xml).encode("utf-8")
    got = server.request("PUT", f"/fhir/Bundle/{doc_xml['id']}", source(), content=sent, params=query,
                         headers=headers)
    same_headers(plain, got)
    assert got.content == sent and from_xml(got) == canonical(doc_xml)
    again = server.request("PUT", f"/fhir/Bundle/{doc_json['id']}", source(), content=encode(doc_json),
                           params=query, headers={**headers, "Content-Type": FHIR_JSON})
    assert again.status_code == 200, again.text  # the same bytes again: stored already, answered converted
    assert from_xml(again) == canonical(doc_json)


def transaction(document: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b1b0d1e-0000-4000-8000-000000000001", "resource": document,
         "request": {"method": "POST", "url": "Bundle"}}]}


def retrieve_case(server: Server, w: World, way: str) -> None:
    """The stored document in the other format: converted, the same resource as the stored bytes say."""
    for docref, stored_as in ((w.doc_json, "json"), (w.doc_xml, "xml")):
        url = docref["content"][0]["attachment"]["url"]
        raw = server.get(url, citizen(w.p))  # no preference: as it was submitted
        assert raw.status_code == 200
        stored = from_xml(raw) if stored_as == "xml" else from_json(raw)
        query, headers = as_xml(way)
        in_xml = server.get(url, citizen(w.p), params=query, headers=headers)
        in_json = server.get(url, citizen(w.p), params={"_format": "json"} if way == "format" else {},
                             headers={"Accept": FHIR_JSON if way == "accept" else FHIR_XML})
        same_headers(raw, in_xml)
        same_headers(raw, in_json)
        assert from_xml(in_xml) == from_json(in_json) == stored


def fhirpath_patch(path: str = "DocumentReference.status") -> dict[str, Any]:
    """A FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html) replacing the status by entered-in-error."""
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path},
        {"name": "value", "valueCode": "entered-in-error"}]}]}


def patch_case(server: Server, w: World, way: str) -> None:
    """A FHIRPath Patch in XML (its reason in the query) does what the same patch in JSON does to another
    document, and the answer comes in XML when asked; a patch the server cannot do is refused in XML too."""
    first, second = server.shared(source(), note(w.p)), server.shared(source(), note(w.p))
    reason = {"reason": "forkert patient"}
    path = f"/fhir/DocumentReference/{second['id']}"
    query, headers = as_xml(way, {**reason}, headers={"Content-Type": FHIR_XML})
    refused = server.request("PATCH", path, ADMIN, content=to_xml(fhirpath_patch("DocumentReference.description"))
                             .encode(), params=query, headers=headers)
    assert refused.status_code == 422 and from_xml(refused)["resourceType"] == "OperationOutcome"
    plain = server.request("PATCH", f"/fhir/DocumentReference/{first['id']}", ADMIN, params=reason,
                           content=json.dumps(fhirpath_patch()).encode(),
                           headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    got = server.request("PATCH", path, ADMIN, content=to_xml(fhirpath_patch()).encode(), params=query,
                         headers=headers)
    same_headers(plain, got)
    answer = from_xml(got)
    assert answer["status"] == "entered-in-error" and answer["id"] == second["id"]
    assert answer["meta"]["versionId"] == "2"  # the refusal changed nothing: this is the first change
    expected = from_json(plain)
    for d in (answer, expected):  # two documents: their bytes' size and hash differ
        for k in ("size", "hash"):
            d["content"][0]["attachment"].pop(k)
    assert ids_out(answer) == ids_out(expected)


def search_post_case(server: Server, w: World, way: str) -> None:
    form = {"patient.identifier": w.ident}
    plain = server.request("POST", "/fhir/DocumentReference/_search", citizen(w.p), data=form,
                           headers={"Accept": FHIR_JSON})
    assert plain.status_code == 200, plain.text
    query, headers = as_xml(way)
    got = server.request("POST", "/fhir/DocumentReference/_search", citizen(w.p), data=form, params=query,
                         headers=headers)
    answer = from_xml(got)
    if way == "format":
        answer = json.loads(json.dumps(answer).replace("_format=xml&", ""))
        # FHIR lets the form carry _format as well
        in_form = server.request("POST", "/fhir/DocumentReference/_search", citizen(w.p),
                                 data={**form, "_format": "xml"}, headers={"Accept": FHIR_JSON})
        assert without(from_xml(in_form), "id", "link") == without(answer, "id", "link")
    assert without(answer, "id") == without(from_json(plain), "id")


def decide_case(server: Server, w: World, way: str) -> None:
    """$decide as kroniker's JSON object, and as a FHIR Parameters resource in XML: the same decision."""
    plain = server.request("POST", "/fhir/ClinicalImpression/$decide", source(),
                           json={"suggestion": w.suggestion, "colour": "green", "reason": "Bedre end ventet"},
                           headers={"Accept": FHIR_JSON})
    assert plain.status_code == 201, plain.text
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "suggestion", "valueId": w.suggestion}, {"name": "colour", "valueCode": "green"},
        {"name": "reason", "valueString": "Bedre end ventet"}]}
    query, headers = as_xml(way, headers={"Content-Type": FHIR_XML})
    got = server.request("POST", "/fhir/ClinicalImpression/$decide", source(),
                         content=to_xml(parameters).encode(), params=query, headers=headers)
    answer, expected = created(server, got, source()), from_json(plain)
    assert answer["date"] >= expected["date"]  # the time of each decision: its own
    assert ids_out(without(answer, "date")) == ids_out(without(expected, "date"))


def by_patient(w: World) -> dict[str, str]:
    return {"patient.identifier": w.ident}


def list_case(server: Server, w: World, way: str) -> None:
    """Both MHD Lists alike: the SubmissionSet and the Folder."""
    read_case(lambda w: f"/fhir/List/{w.submission_set}", lambda w: citizen(w.p))(server, w, way)
    read_case(lambda w: f"/fhir/List/{w.folder}", lambda w: citizen(w.p))(server, w, way)


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/fhir/metadata"): read_case(lambda w: "/fhir/metadata", lambda w: None),
    ("GET", "/metadata"): read_case(lambda w: "/metadata", lambda w: None),
    ("POST", "/fhir"): document_case("/fhir"),
    ("POST", "/fhir/"): document_case("/fhir/"),
    ("POST", "/fhir/Bundle"): document_case("/fhir/Bundle"),
    ("GET", "/fhir/Bundle/{id}"): retrieve_case,
    ("GET", "/fhir/DocumentReference"): read_case(lambda w: "/fhir/DocumentReference", lambda w: citizen(w.p),
                                                  by_patient, volatile=("id",)),
    ("POST", "/fhir/DocumentReference/_search"): search_post_case,
    ("GET", "/fhir/DocumentReference/{id}"): read_case(lambda w: f"/fhir/DocumentReference/{w.doc_xml['id']}",
                                                       lambda w: citizen(w.p)),
    ("GET", "/fhir/DocumentReference/{id}/_history/{vid}"): read_case(
        lambda w: f"/fhir/DocumentReference/{w.doc_json['id']}/_history/1", lambda w: citizen(w.p)),
    ("GET", "/fhir/DocumentReference/{id}/_history"): read_case(
        lambda w: f"/fhir/DocumentReference/{w.doc_json['id']}/_history", lambda w: citizen(w.p), volatile=("id",)),
    ("PATCH", "/fhir/DocumentReference/{id}"): patch_case,
    # the audit log grows with each call: oldest first, the first records are the same; the total is not
    ("GET", "/fhir/AuditEvent"): read_case(lambda w: "/fhir/AuditEvent", lambda w: ADMIN,
                                           lambda w: {**by_patient(w), "_sort": "date", "_count": "3"},
                                           volatile=("total",)),
    ("POST", "/fhir/QuestionnaireResponse"): create_case(
        "/fhir/QuestionnaireResponse", lambda w: citizen(w.p), lambda w: about(patient_response(), w.p)),
    ("GET", "/fhir/QuestionnaireResponse"): read_case(lambda w: "/fhir/QuestionnaireResponse", lambda w: source(),
                                                      by_patient),
    ("GET", "/fhir/QuestionnaireResponse/{id}"): read_case(lambda w: f"/fhir/QuestionnaireResponse/{w.response}",
                                                           lambda w: citizen(w.p)),
    ("GET", "/fhir/Observation"): read_case(lambda w: "/fhir/Observation", lambda w: citizen(w.p), by_patient),
    ("GET", "/fhir/Observation/{id}"): read_case(lambda w: f"/fhir/Observation/{w.observation}",
                                                 lambda w: source()),
    ("POST", "/fhir/ClinicalImpression/$triage"): create_case(
        "/fhir/ClinicalImpression/$triage", lambda w: source(), lambda w: about(assessment(cpr=w.p.cpr), w.p)),
    ("POST", "/fhir/ClinicalImpression/$decide"): decide_case,
    ("GET", "/fhir/ClinicalImpression"): read_case(lambda w: "/fhir/ClinicalImpression", lambda w: source(),
                                                   by_patient),
    ("GET", "/fhir/ClinicalImpression/{id}"): read_case(lambda w: f"/fhir/ClinicalImpression/{w.suggestion}",
                                                        lambda w: source()),
    ("PUT", "/fhir/Bundle/{id}"): put_case,
    ("GET", "/fhir/List/{id}"): list_case,
}

FHIR_ROUTES = [(r.method, r.path) for r in ROUTES if is_fhir_path(r.path)]


def test_the_route_table_has_fhir_routes_and_only_they_are_cased() -> None:
    assert ("GET", "/fhir/metadata") in FHIR_ROUTES and ("POST", "/fhir/Bundle") in FHIR_ROUTES
    assert set(CASES) <= set(FHIR_ROUTES), set(CASES) - set(FHIR_ROUTES)  # no case for a route that is gone


@pytest.mark.parametrize("way", XML_WAYS)
@pytest.mark.parametrize(("method", "path"), FHIR_ROUTES, ids=[f"{m} {p}" for m, p in FHIR_ROUTES])
def test_every_fhir_route_answers_json_and_xml_alike(server: Server, world: World, method: str, path: str,
                                                     way: str) -> None:
    assert (method, path) in CASES, f"{method} {path} has no XML case in tests/test_server_xml.py"
    CASES[(method, path)](server, world, way)


# -- errors in XML -----------------------------------------------------------------------------------------------

def outcome_in_xml(r: httpx.Response, status: int) -> set[str]:
    assert r.status_code == status, r.text
    data = from_xml(r)
    assert data["resourceType"] == "OperationOutcome" and data["issue"]
    assert "Traceback" not in r.text
    return finding_codes(data)


def test_refusals_come_in_the_format_asked(server: Server, world: World) -> None:
    xml = {"Accept": FHIR_XML}
    stranger = new_patient("Sigurd", "Stranger")
    # 401: no token; 403: a citizen may not share documents; 404: no such document; 405; an unrouted path
    assert "no-token" in outcome_in_xml(server.get("/fhir/DocumentReference", headers=xml), 401)
    r = server.request("POST", "/fhir/Bundle", citizen(world.p), content=encode(note(world.p)),
                       headers={**xml, "Content-Type": FHIR_JSON})
    outcome_in_xml(r, 403)
    assert "unknown-document" in outcome_in_xml(server.get("/fhir/DocumentReference/nothing-here", citizen(
        world.p), params={"_format": "xml"}), 404)
    assert "citizen-other-patient" in outcome_in_xml(server.get(
        "/fhir/DocumentReference", citizen(stranger), params={"patient.identifier": world.ident}, headers=xml), 403)
    assert "method" in outcome_in_xml(server.request("DELETE", "/fhir/metadata", headers=xml), 405)
    assert "no-route" in outcome_in_xml(server.get("/fhir/Nothing", headers=xml), 404)
    assert "no-route" in outcome_in_xml(server.get("/fhir/Nothing", params={"_format": "application/fhir xml"}), 404)


def test_an_invalid_xml_document_gets_its_findings_in_xml_and_nothing_is_stored(server: Server,
                                                                                 world: World) -> None:
    before = server.rows()
    doc = note(world.p)
    doc["entry"][0]["resource"]["status"] = "not-a-status"
    r = server.submit(source(), to_xml(doc).encode(), content_type=FHIR_XML, Accept=FHIR_XML)
    outcome_in_xml(r, 422)
    after = server.rows()
    assert {t: after[t] for t in TABLES if t != "audit_events"} == {t: before[t] for t in TABLES
                                                                     if t != "audit_events"}


def test_an_unacceptable_accept_is_406_in_json_and_changes_nothing(server: Server, world: World) -> None:
    before = server.rows()
    for accept in ("text/html", "application/pdf, text/plain;q=0.5", "application/fhir+xml;q=0"):
        r = server.submit(source(), note(world.p), Accept=accept)
        assert r.status_code == 406 and r.headers["content-type"].startswith(FHIR_JSON)
        assert "not-acceptable" in finding_codes(r.json())
    r = server.get("/fhir/metadata", params={"_format": "turtle"})
    assert r.status_code == 406 and "not-acceptable" in finding_codes(r.json())
    rows = server.rows()
    assert {t: rows[t] for t in TABLES if t != "audit_events"} == {t: before[t] for t in TABLES if t != "audit_events"}


@pytest.mark.parametrize(("accept", "expected"), [
    ("", FHIR_JSON), ("*/*", FHIR_JSON), ("application/json", FHIR_JSON), ("application/xml", FHIR_XML),
    ("application/fhir+json;q=0.5, application/fhir+xml", FHIR_XML),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", FHIR_XML),  # a browser's
    ("*/*, application/fhir+xml", FHIR_XML), ("application/fhir+xml;q=0.1, */*", FHIR_JSON)])
def test_accept_is_read_with_its_q_values(server: Server, accept: str, expected: str) -> None:
    r = server.get("/fhir/metadata", headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.headers["content-type"].startswith(expected)


def test_format_overrides_accept(server: Server) -> None:
    for value, expected in (("json", FHIR_JSON), ("application/fhir+json", FHIR_JSON), ("xml", FHIR_XML),
                            ("application/fhir+xml", FHIR_XML), ("application/xml", FHIR_XML)):
        accept = FHIR_XML if expected == FHIR_JSON else FHIR_JSON
        r = server.get("/fhir/metadata", params={"_format": value}, headers={"Accept": accept})
        assert r.status_code == 200 and r.headers["content-type"].startswith(expected), value


HOSTILE = {
    "entity bomb": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                   b'<QuestionnaireResponse xmlns="http://hl7.org/fhir"><status value="&lol2;"/>'
                   b'</QuestionnaireResponse>',
    "external entity": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       b'<QuestionnaireResponse xmlns="http://hl7.org/fhir"><status value="&x;"/>'
                       b'</QuestionnaireResponse>',
    "not well-formed": b'<QuestionnaireResponse xmlns="http://hl7.org/fhir"><status value="completed">',
    "deep": b'<QuestionnaireResponse xmlns="http://hl7.org/fhir">' + b"<item>" * 5000 + b"</item>" * 5000
            + b"</QuestionnaireResponse>",
    "out of order": b'<QuestionnaireResponse xmlns="http://hl7.org/fhir"><status value="completed"/>'
                    b'<questionnaire value="x"/></QuestionnaireResponse>',
}


@pytest.mark.parametrize("path", ["/fhir/QuestionnaireResponse", "/fhir/ClinicalImpression/$triage",
                                  "/fhir/ClinicalImpression/$decide", "/fhir"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_malformed_or_hostile_xml_is_400_and_nothing_is_stored(server: Server, world: World, path: str,
                                                               name: str) -> None:
    who = citizen(world.p) if path.endswith("QuestionnaireResponse") else source()
    before = server.rows()
    body = HOSTILE[name]
    if path == "/fhir":  # the same hostility as a transaction Bundle
        body = body.replace(b"QuestionnaireResponse", b"Bundle").replace(
            b'<status value=', b'<type value="transaction"/><identifier value=')
    r = server.request("POST", path, who, content=body, headers={"Content-Type": FHIR_XML})
    if path == "/fhir" and (b"DOCTYPE" in body or name != "not well-formed"):
        # what cannot be told a transaction goes to the submission, whose unreadable document is its 422 report
        assert r.status_code in (400, 422), r.text
    else:
        assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(FHIR_JSON) and r.json()["resourceType"] == "OperationOutcome"
    assert "Traceback" not in r.text
    after = server.rows()
    assert {t: after[t] for t in TABLES if t != "audit_events"} == {t: before[t] for t in TABLES
                                                                     if t != "audit_events"}


# -- documents across formats ------------------------------------------------------------------------------------

def test_documents_submitted_in_one_format_are_read_in_the_other(server: Server, world: World) -> None:
    """As submitted, the document is the canonical form (its size and hash are the DocumentReference's); asked
    for in the other format it is converted, and converts back to the same document."""
    p = world.p
    doc = note(p)
    d = server.shared(source(), to_xml(doc).encode("utf-8"), content_type=FHIR_XML)
    url = d["content"][0]["attachment"]["url"]
    as_json = server.get(url, citizen(p), headers={"Accept": FHIR_JSON})
    assert as_json.status_code == 200 and canonical(as_json.json()) == canonical(doc)
    bundle_id = str(uuid.uuid4())
    d = server.shared(source(), note(p) | {"id": bundle_id})
    raw = server.get(d["content"][0]["attachment"]["url"], citizen(p))
    assert len(raw.content) == d["content"][0]["attachment"]["size"]  # as stored: the bytes the hash is of
    in_xml = server.get(d["content"][0]["attachment"]["url"], citizen(p), params={"_format": "xml"})
    assert from_xml(in_xml) == canonical(raw.json())
    assert from_xml(in_xml)["id"] == bundle_id


def test_an_xml_narrative_stays_xhtml_in_xhtmls_namespace(server: Server, world: World) -> None:
    r = server.get(world.doc_json["content"][0]["attachment"]["url"], citizen(world.p), headers={"Accept": FHIR_XML})
    root = etree.fromstring(r.content, SAFE)
    divs = root.findall(f".//{{{XHTML_NS}}}div")
    assert divs and all(d.getparent().tag == f"{{{FHIR_NS}}}text" for d in divs)
    assert root.findall(f".//{{{FHIR_NS}}}div") == []


def test_xml_on_postgresql_too(pg_server: Server) -> None:
    w = make_world(pg_server)
    for key in (("GET", "/fhir/Bundle/{id}"), ("POST", "/fhir/QuestionnaireResponse"),
                ("GET", "/fhir/DocumentReference")):
        CASES[key](pg_server, w, "accept")
    with pg_server.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM documents")).scalar_one() >= 2


# -- the writer on what the routes above may not show ------------------------------------------------------------

def round_trip(resource: dict[str, Any]) -> dict[str, Any]:
    text = to_xml(resource)
    root = etree.fromstring(text.encode("utf-8"), SAFE)
    assert etree.QName(root).namespace == FHIR_NS
    parsed = parse_xml("<written>", text.encode("utf-8"), Limits())
    assert parsed.findings == [], [f.message() for f in parsed.findings]
    return parsed.data


def test_primitive_extensions_and_ids_go_where_fhirs_xml_puts_them() -> None:
    # xml.html: a primitive's id is an attribute, its extensions child elements; a null in a repeating
    # primitive's array with an extension in `_name` is an element with no value attribute.
    ext = {"url": "http://example.org/why", "valueString": "anslået"}
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1974-12-25",
               "_birthDate": {"id": "bd", "extension": [ext]},
               "name": [{"family": "Hansen", "given": ["Bente", None], "_given": [None, {"extension": [ext]}]}]}
    text = to_xml(patient)
    assert '<birthDate id="bd" value="1974-12-25">' in text
    assert '<extension url="http://example.org/why">' in text
    assert round_trip(patient) == patient


def test_contained_and_bundled_resources_are_wrapped_in_their_type() -> None:
    org = {"resourceType": "Organization", "id": "o1", "name": "Klinikken"}
    docref = {"resourceType": "DocumentReference", "id": "d1", "contained": [org], "status": "current",
              "author": [{"reference": "#o1"}], "content": [{"attachment": {"contentType": FHIR_JSON}}]}
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 1,
              "entry": [{"resource": docref, "search": {"mode": "match"}}]}
    root = etree.fromstring(to_xml(bundle).encode(), SAFE)
    ns = {"f": FHIR_NS}
    assert root.xpath("f:entry/f:resource/f:DocumentReference/f:contained/f:Organization/f:name/@value",
                      namespaces=ns) == ["Klinikken"]
    assert round_trip(bundle) == bundle


def test_a_narrative_is_xhtml_in_xhtmls_namespace_even_when_the_json_left_it_out() -> None:
    obs = {"resourceType": "Observation", "text": {"status": "generated", "div": "<div><p>NRS 3/10</p></div>"},
           "status": "final", "code": {"text": "smerte"}}
    root = etree.fromstring(to_xml(obs).encode(), SAFE)
    [div] = root.findall(f"{{{FHIR_NS}}}text/{{{XHTML_NS}}}div")
    assert div.findtext(f"{{{XHTML_NS}}}p") == "NRS 3/10"


def test_characters_xml_cannot_hold_are_written_as_their_json_escape() -> None:
    oo = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": "felt 'a\x01b' og \ud800"}]}
    data = round_trip(oo)
    assert data["issue"][0]["diagnostics"] == "felt 'a\\u0001b' og \\ud800"


@pytest.mark.parametrize(("lang", "words"), [("da", "XML-indholdet kan ikke læses"), ("en", "XML body cannot be read")])
def test_an_unreadable_xml_body_is_told_in_the_callers_language_and_format(server: Server, world: World, lang: str,
                                                                           words: str) -> None:
    r = server.request("POST", "/fhir/QuestionnaireResponse", citizen(world.p), content=HOSTILE["external entity"],
                       headers={"Content-Type": FHIR_XML, "Accept": FHIR_XML, "Accept-Language": lang})
    outcome_in_xml(r, 400)
    assert words in from_xml(r)["issue"][0]["diagnostics"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "bundle"])
def test_an_iti65_provide_bundle_in_xml_is_answered_as_the_same_in_json(server: Server, world: World,
                                                                        binary: bool) -> None:
    """MHD ITI-65 as FHIR XML (MHD allows either format): the same transaction-response and the same stored
    DocumentReferences as the JSON transaction of another document for the same patient gets."""
    def transaction() -> dict[str, Any]:  # with a Folder and the Patient (ITI-65's Folders and Patient slices)
        tx = provide_bundle(note(world.p), binary=binary)
        add_folder(tx)
        add_patient(tx, world.p.cpr)
        return tx

    plain = server.request("POST", "/fhir", source(), content=encode(transaction()),
                           headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    assert plain.status_code == 200, plain.text
    got = server.request("POST", "/fhir", source(), content=to_xml(transaction()).encode("utf-8"),
                         headers={"Content-Type": FHIR_XML, "Accept": FHIR_XML})
    assert got.status_code == 200, got.text
    answer, expected = from_xml(got), from_json(plain)
    assert answer["type"] == expected["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == [e["response"]["status"] for e in expected["entry"]]
    kinds = [e["response"]["location"].split("/fhir/")[1].split("/")[0] for e in answer["entry"]]
    assert kinds == [e["response"]["location"].split("/fhir/")[1].split("/")[0] for e in expected["entry"]]
    assert kinds == ["List", "List", "DocumentReference", "Bundle", "Patient"]  # SubmissionSet, Folder, ...
    assert [e["response"].get("outcome") for e in answer["entry"]] == \
        [e["response"].get("outcome") for e in expected["entry"]]  # the Patient matched, said alike
    i = kinds.index("DocumentReference")
    stored = server.get(answer["entry"][i]["response"]["location"].split("/_history")[0], citizen(world.p),
                        headers={"Accept": FHIR_JSON})
    expected_stored = server.get(expected["entry"][i]["response"]["location"].split("/_history")[0],
                                 citizen(world.p), headers={"Accept": FHIR_JSON})
    a, b = from_json(stored), from_json(expected_stored)
    # Either way the document is stored as JSON: a Binary's bytes are JSON in both transactions, and a document
    # Bundle inside the transaction is stored as the JSON form of the transaction's entry (docs/server.md, Formats)
    for d in (a, b):
        assert d["content"][0]["attachment"]["contentType"] == FHIR_JSON
        d["content"][0]["attachment"].pop("size"), d["content"][0]["attachment"].pop("hash")
        d.pop("masterIdentifier")
    assert ids_out(a) == ids_out(b)


def test_documents_added_to_a_folder_in_xml_are_answered_as_in_json(server: Server, world: World) -> None:
    """ITI-65's PUT List/{id} of a kept Folder, in FHIR XML: the same answer (200 OK at version 2) and the same
    Folder kept as the JSON transaction makes of another Folder."""
    answers, folders = [], []
    for content_type in (FHIR_JSON, FHIR_XML):
        made = provide_bundle(note(world.p))
        add_folder(made)
        r = server.request("POST", "/fhir", source(), content=encode(made), headers={"Content-Type": FHIR_JSON})
        assert r.status_code == 200, r.text
        folder_id = r.json()["entry"][1]["response"]["location"].split("/fhir/List/")[1].split("/")[0]
        kept = server.get(f"/fhir/List/{folder_id}", citizen(world.p), headers={"Accept": FHIR_JSON}).json()
        tx = provide_bundle(note(world.p))
        update_folder(tx, folder_id, kept)
        body = encode(tx) if content_type == FHIR_JSON else to_xml(tx).encode("utf-8")
        got = server.request("POST", "/fhir", source(), content=body,
                             headers={"Content-Type": content_type, "Accept": content_type})
        assert got.status_code == 200, got.text
        answer = from_json(got) if content_type == FHIR_JSON else from_xml(got)
        answers.append([(e["response"]["status"], e["response"]["location"].split("/fhir/")[1].split("/")[0])
                         for e in answer["entry"]])
        assert answer["entry"][1]["response"]["location"].endswith(f"/fhir/List/{folder_id}/_history/2")
        folder = server.get(f"/fhir/List/{folder_id}", citizen(world.p), headers={"Accept": FHIR_JSON}).json()
        folders.append((folder["meta"]["versionId"], len(folder["entry"])))
    assert answers[0] == answers[1]
    assert answers[0][1] == ("200 OK", "List")
    assert folders == [("2", 2), ("2", 2)]
