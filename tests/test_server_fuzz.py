"""A property-based HTTP fuzz of every route of the reference server (issue 9, item 3), over real HTTP against the
real app on SQLite and on PostgreSQL: whatever is sent, by whoever,

- the answer is never a 5xx, and never a redirect but a page's to a fixed path of its own;
- every refusal (4xx) is an OperationOutcome, with no trace of Python;
- a refused request stores nothing (documents, their event codes, treatment relations, blocks);
- every request, answered or refused, adds exactly one record to the audit log.

The requests are built from the route table (ROUTES): each route is fuzzed with its own kind of body, parameters
from the search and access-log vocabulary mixed with arbitrary text, tokens of every role and broken ones, and
paths with odd ids, trailing and encoded slashes. Hypothesis runs derandomized with a fixed number of examples per
route (KRONIKER_FUZZ_EXAMPLES, default 40), so CI runs the same requests every time. Cases it found are pinned as
explicit tests in test_server_robustness.py.

Why hypothesis and not schemathesis: the server's routes are not described by OpenAPI (FHIR's own
CapabilityStatement is), the interesting inputs (FHIR search syntax, tokens per role, MedCom documents) are
domain strategies schemathesis would need as hooks anyway, and hypothesis is already a test dependency.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kroniker.reference_server import json_xml
from kroniker.reference_server.app import ROUTES, RouteSpec
from kroniker.reference_server.tokens import Principal
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.server_support import ADMIN, DPO, Server, citizen, encode, is_outcome, new_patient, note, source

pytestmark = pytest.mark.network

EXAMPLES = int(os.environ.get("KRONIKER_FUZZ_EXAMPLES", "40"))
LIMIT = 64 * 1024
STORED = ("documents", "document_events", "treatment_relations", "blocks")


@dataclass
class World:
    """The server and what the fuzz can aim at: a patient with a note, a doctor with a relation, a block."""

    server: Server
    patient: s.Patient
    doc_id: str
    block_id: str
    doctor: Principal
    notes: list[bytes]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          package_cache: PackageCache) -> Iterator[World]:
    with s.server_for(request, tmp_path_factory, package_cache, max_request_bytes=LIMIT) as server:
        p = new_patient("Fie", "Fuzz")
        doc = server.shared(source(), note(p))
        doctor = s.clinician("F1000")
        server.relate(p, clinician_id=doctor.auth_id)
        block = server.block(citizen(p), kind="organisation", organisation=s.OTHER_CLINIC.sor).json()["id"]
        yield World(server, p, doc["id"], block, doctor, [encode(note(p)) for _ in range(2)])


# -- strategies ------------------------------------------------------------------------------------------------

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
ANY_TEXT = st.text(max_size=40)  # NUL, control characters, lone surrogates, any script
HEADER_TEXT = PRINTABLE.map(str.strip)  # what HTTP can carry in a header value (no edge spaces)
PARAM_NAMES = ["patient", "patient.identifier", "status", "type", "category", "date", "author.identifier", "event",
               "_count", "_offset", "_consent-override", "replaces", "_format"]


def param_values(w: World) -> st.SearchStrategy[str]:
    cpr = w.patient.cpr
    return st.one_of(
        st.sampled_from([w.patient.identifier, f"Patient/{cpr}", cpr, "current", "current,superseded",
                         "entered-in-error", "le9999-12-31", "gt9999-12-31", "lt0001-01-01", "ge2025-05-02",
                         "2026-03-29", "eq2026-13-45", "ge9999-12-31T23:59:59-05:00", "²", "٣", "9" * 20, "9" * 5000,
                         "-1", "0", "500", "http://snomed.info/sct|866144008", "urn:oid:1.2.208.176.1.1|x", "|",
                         ",,,", "consent", w.doc_id, "\x00",
                         # the event search (issue 12): the care package's code, bare, and malformed tokens
                         "https://kroniker.example/fhir/lbp/CodeSystem/care-package|lbp", "lbp", "a|b|lbp",
                         "https://kroniker.example/fhir/lbp/CodeSystem/care-package|", "x" * 65]),
        PRINTABLE, ANY_TEXT, st.integers(-10**30, 10**30).map(str))


def parameters(w: World) -> st.SearchStrategy[list[tuple[str, str]]]:
    names = st.one_of(st.sampled_from(PARAM_NAMES), PRINTABLE)
    return st.lists(st.tuples(names, param_values(w)), max_size=8)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), ANY_TEXT)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                st.dictionaries(ANY_TEXT, inner, max_size=4)),
                           max_leaves=12)


def json_bodies(w: World) -> st.SearchStrategy[bytes]:
    """Objects of the admin, block and withdrawal shapes with odd values, any JSON, deep nesting, and bytes."""
    fields = st.fixed_dictionaries({}, optional={
        "patient": st.one_of(st.just(w.patient.cpr), JSON_VALUES),
        "kind": st.one_of(st.sampled_from(["professional", "organisation", "period", "general"]), JSON_VALUES),
        "clinician": st.one_of(st.just("F1000"), JSON_VALUES),
        "organisation": st.one_of(st.just(s.OTHER_CLINIC.sor), JSON_VALUES),
        "evidence": st.one_of(st.just("referral"), JSON_VALUES),
        "start": st.one_of(st.sampled_from(["2026-03-29", "0001-01-01", "2026-03-29T01:30:00+01:00"]), JSON_VALUES),
        "end": st.one_of(st.sampled_from(["2026-03-29", "9999-12-31", "9999-12-31T23:59:59-05:00"]), JSON_VALUES),
        "status": st.one_of(st.just("entered-in-error"), JSON_VALUES),
        "reason": st.one_of(st.just("forkert patient"), JSON_VALUES),
    })
    nested = st.integers(1, 3000).map(lambda n: b'{"kind": ' + b"[" * n + b"]" * n + b"}")
    # The same in W3C's JSON in XML (the plain routes take it with an XML Content-Type), and XML that is not it.
    in_xml = st.one_of(fields.map(_in_xml), JSON_VALUES.map(_in_xml), ANY_TEXT.map(
        lambda t: f'<map xmlns="{json_xml.NS}"><string key="kind">{t}</string></map>'.encode("utf-8", "surrogatepass")),
        st.integers(1, 3000).map(lambda n: f'<map xmlns="{json_xml.NS}">'.encode() + b'<array key="a">' * n))
    return st.one_of(fields.map(_ascii_json), JSON_VALUES.map(_ascii_json), nested, st.binary(max_size=200), in_xml)


def _in_xml(value: Any) -> bytes:
    try:
        return json_xml.dumps(value)
    except TypeError:  # NaN or an infinity, which JSON in XML has no form for either: sent as XML has it
        return f'<number xmlns="{json_xml.NS}">{value}</number>'.encode()


def _ascii_json(value: Any) -> bytes:
    # ensure_ascii: NUL and lone surrogates travel as \u escapes, as a hostile client would send them.
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def document_bodies(w: World) -> st.SearchStrategy[bytes]:
    def mutated(doc_and_value: tuple[int, Any]) -> bytes:
        which, value = doc_and_value
        doc = json.loads(w.notes[which % len(w.notes)])
        s.composition(doc)["title"] = value
        return _ascii_json(doc)

    return st.one_of(st.sampled_from(w.notes), st.tuples(st.integers(0, 1), JSON_VALUES).map(mutated),
                     JSON_VALUES.map(_ascii_json), st.binary(max_size=300),
                     st.integers(LIMIT - 10, LIMIT + 10).map(lambda n: b" " * n))


def bodies(w: World, route: RouteSpec) -> st.SearchStrategy[bytes]:
    if route.body == "json":
        return json_bodies(w)
    if route.body == "document":
        return document_bodies(w)
    if route.body == "form":
        return st.one_of(parameters(w).map(lambda items: urlencode(items).encode()), st.binary(max_size=200),
                         st.integers(LIMIT - 10, LIMIT + 10).map(lambda n: b"a" * n))
    return st.one_of(st.just(b""), st.just(b""), st.binary(max_size=50))


CONTENT_TYPES = st.one_of(st.none(), st.sampled_from([
    "application/fhir+json", "Application/FHIR+JSON; charset=UTF-8", "application/json", "application/fhir+xml",
    "application/xml", "application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED",
    "multipart/form-data; boundary=x", "multipart/form-data", "text/plain", ";", ""]), HEADER_TEXT)


@dataclass
class Fuzzed:
    method: str
    path: str
    params: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str]


@st.composite
def requests(draw: st.DrawFn, w: World, route: RouteSpec) -> Fuzzed:
    path = route.path
    if "{id}" in path:
        ident = draw(st.one_of(st.sampled_from([w.doc_id, w.block_id, "x", "."]), ANY_TEXT))
        path = path.replace("{id}", quote(ident, safe=""))
    path += draw(st.sampled_from(["", "", "", "", "/", "%2F", "/x"]))
    principals = [None, source(), source(s.OTHER_CLINIC), citizen(w.patient), citizen(new_patient()), w.doctor,
                  s.clinician("F2000"), ADMIN, DPO]
    who = draw(st.one_of(st.sampled_from(principals), st.sampled_from(["garbage", "Bearer", "Bearer x.y.z"])))
    headers = {}
    if isinstance(who, Principal):
        headers.update(w.server.auth(who))
    elif who is not None:
        headers["Authorization"] = who
    optional = {"Content-Type": CONTENT_TYPES, "Accept": st.one_of(st.sampled_from(
        ["*/*", "application/pdf", "Application/FHIR+JSON", "application/fhir+xml"]), HEADER_TEXT),
        "Accept-Language": st.sampled_from(["da", "en", "da-DK", "xx"]),
        "X-Consent-Override": st.one_of(st.sampled_from(["consent", "vital-interest", "true"]), HEADER_TEXT)}
    for name, values in optional.items():
        value = draw(st.one_of(st.none(), values))
        if value is not None:
            headers[name] = value
    return Fuzzed(route.method, path, draw(parameters(w)), draw(bodies(w, route)), headers)


def send(w: World, req: Fuzzed) -> httpx.Response:
    # The query string is written here, not by httpx, so that every drawn name and value is sent as drawn.
    query = urlencode(req.params)
    url = req.path + (f"?{query}" if query else "")
    return w.server.client.request(req.method, url, content=req.body or None, headers=req.headers)


# -- the property ------------------------------------------------------------------------------------------------

PAGE_TARGETS = ("/login", "/min-side", "/min-side#spaerringer", "/kliniker/patient")

@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_no_route_answers_5xx_and_every_refusal_is_an_audited_operation_outcome_that_stores_nothing(
        world: World, route: RouteSpec) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                     HealthCheck.large_base_example])
    @given(req=requests(world, route))
    def prop(req: Fuzzed) -> None:
        before = world.server.rows()
        r = send(world, req)
        after = world.server.rows()
        shown = (req.method, req.path, req.params, req.body[:200], r.status_code, r.text[:300])
        if 300 <= r.status_code < 400:
            # Only a page sends the browser on (GET / to the sign-in page, a form to its page), and only to a
            # path of this server: never a URL built from what the request said (Host, the path).
            where = r.headers.get("location", "")
            assert route.page and r.status_code == 303 and where in PAGE_TARGETS, (*shown, where)
        else:
            assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, shown
        if r.status_code >= 400:
            # A page's refusal is a page (pages.py); a path no route answers is an OperationOutcome all the same.
            assert is_outcome(r) or (route.page and s.is_page(r)), shown
            assert {t: after[t] for t in STORED} == {t: before[t] for t in STORED}, shown
        assert after["audit_events"] - before["audit_events"] == 1, shown

    prop()
