"""Malformed requests to the reference server: unreadable documents, wrong content types, missing or bad tokens,
bodies over Settings.max_request_bytes, bad parameters. Each gets an OperationOutcome, never a stack trace, and a
refused submission leaves nothing behind. Also the `kroniker token` command and concurrent submissions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from kroniker.reference_server import audit
from kroniker.reference_server.tokens import issue, verify
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.server_support import (
    ADMIN,
    FHIR_JSON,
    FHIR_XML,
    GP_CLINIC,
    HOSPITAL_SOR,
    Server,
    citizen,
    encode,
    is_outcome,
    new_patient,
    note,
    source,
)
from tests.xml_writer import to_xml

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 64 * 1024  # a note is about 8 KB


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           package_cache: PackageCache) -> Iterator[Server]:
    with s.server_for(request, tmp_path_factory, package_cache, max_request_bytes=LIMIT) as srv:
        yield srv


def assert_refused_and_nothing_stored(server: Server, send: Any, status: int | tuple[int, ...]) -> httpx.Response:
    """Send a request that must be refused: an OperationOutcome, and only the refusal's audit record written."""
    before = server.rows()
    r = send()
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text[:500]
    assert is_outcome(r), r.text[:500]
    after = server.rows()
    assert {t: after[t] - before[t] for t in after} == {
        "documents": 0, "document_events": 0, "treatment_relations": 0, "blocks": 0, "audit_events": 1,
        "clinical_resources": 0}
    return r


def assert_issue(r: httpx.Response, code: str, where: str) -> None:
    """The refusal names the finding code and the place it is about (the document path, field or parameter)."""
    issues = [(c["code"], i.get("diagnostics", "")) for i in r.json()["issue"]
              for c in i.get("details", {}).get("coding", [])]
    named = re.compile(rf"(^|[\s(]){re.escape(where)}($|[\s:,)])")
    assert any(c == code and named.search(d) for c, d in issues), issues


# -- documents that cannot be read ------------------------------------------------------------------------------

# Each with the finding it must get and where: the reading's own codes (findings.md: json-syntax, encoding,
# xml-syntax, xml-structure) on the whole document, or the document rule on the element it breaks.
NOT_DOCUMENTS: dict[str, tuple[bytes, str, str, str]] = {
    "bad JSON": (b'{"resourceType": "Bundle", "type": "document", ', FHIR_JSON, "json-syntax", "(document)"),
    "not a Bundle": (b'{"resourceType": "Patient", "id": "x"}', FHIR_JSON, "DOC-BUNDLE-TYPE", "Patient"),
    "a Bundle, but no document": (b'{"resourceType": "Bundle", "type": "collection"}', FHIR_JSON, "DOC-BUNDLE-TYPE",
                                  "Bundle.type"),
    "a JSON array": (b"[1, 2, 3]", FHIR_JSON, "json-syntax", "(document)"),
    "a JSON string": (b'"Journalnotat"', FHIR_JSON, "json-syntax", "(document)"),
    "an empty body": (b"", FHIR_JSON, "json-syntax", "(document)"),
    "not UTF-8": ("{\"title\": \"Lænderyg\"}".encode("latin-1"), FHIR_JSON, "encoding", "(document)"),
    "a PDF": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", FHIR_JSON, "encoding",
              "(document)"),
    "broken XML": (b'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/>', FHIR_XML, "xml-syntax",
                   "(document)"),
    "XML with an external entity": (b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                    b'<Bundle xmlns="http://hl7.org/fhir"><id value="&x;"/></Bundle>', FHIR_XML,
                                    "xml-syntax", "(document)"),
    "not a FHIR XML resource": (b"<html><body>Journalnotat</body></html>", FHIR_XML, "xml-structure", "html"),
}


@pytest.mark.parametrize("kind", list(NOT_DOCUMENTS))
def test_a_body_that_is_not_a_medcom_document_is_refused_with_an_operation_outcome(server: Server, kind: str) -> None:
    body, content_type, code, where = NOT_DOCUMENTS[kind]
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body, content_type=content_type),
                                          (400, 422))
    assert any(i["severity"] in ("error", "fatal") for i in r.json()["issue"])
    assert_issue(r, code, where)
    assert "root:" not in r.text and "/etc/passwd" not in r.text.replace("file:///etc/passwd", "")


def test_a_number_too_long_to_read_is_a_finding_not_a_crash(server: Server) -> None:
    body = b'{"resourceType": "Bundle", "type": "document", "total": ' + b"9" * 5000 + b"}"
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body), (400, 422))
    assert "internal" not in s.finding_codes(r.json())
    assert_issue(r, "json-syntax", "(document)")


@pytest.mark.parametrize("content_type", ["text/plain", "application/pdf", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded"])
def test_a_content_type_other_than_fhir_is_refused(server: Server, content_type: str) -> None:
    body = encode(note(new_patient("Ane", "Art")))
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body, content_type=content_type),
                                          415)
    assert "media-type" in s.finding_codes(r.json())


# -- tokens ------------------------------------------------------------------------------------------------------

def _signed(server: Server, claims: dict[str, Any], key: bytes | None = None) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "kroniker", "iat": now, "exp": now + 600, **claims}, key or server.key, algorithm="HS256")


def bad_authorisations(server: Server) -> dict[str, str | None]:
    src = {"role": "source", "sor": GP_CLINIC.sor}
    return {
        "no Authorization header": None,
        "a bearer without a token": "Bearer",
        "another scheme": "Basic " + "c291cmNlOnNlY3JldA==",
        "not a JWT": "Bearer journalnotat",
        "signed with another key": "Bearer " + _signed(server, src, key=b"another key of the right length 32"),
        "expired": "Bearer " + issue(server.key, source(), lifetime=-60),
        "an unknown role": "Bearer " + _signed(server, {"role": "superuser", "sor": GP_CLINIC.sor}),
        "a source without SOR": "Bearer " + _signed(server, {"role": "source"}),
        "a citizen without CPR": "Bearer " + _signed(server, {"role": "citizen"}),
        "a clinician without SOR": "Bearer " + _signed(server, {"role": "clinician", "auth_id": "X1"}),
        "another issuer": "Bearer " + jwt.encode({**src, "iss": "someone", "exp": int(time.time()) + 60}, server.key,
                                                 algorithm="HS256"),
        "unsigned (alg none)": "Bearer " + jwt.encode({**src, "iss": "kroniker", "exp": int(time.time()) + 60}, None,
                                                      algorithm="none"),
        "no expiry": "Bearer " + jwt.encode({**src, "iss": "kroniker"}, server.key, algorithm="HS256"),
        # Settings.max_token_lifetime (24 hours by default) bounds how long a stolen token is good for.
        "valid for 30 days": "Bearer " + jwt.encode({**src, "iss": "kroniker", "exp": int(time.time()) + 30 * 86400},
                                                    server.key, algorithm="HS256"),
        "issued to live 48 hours": "Bearer " + jwt.encode(
            {**src, "iss": "kroniker", "iat": int(time.time()) - 47 * 3600, "exp": int(time.time()) + 3600},
            server.key, algorithm="HS256"),
    }


def test_a_request_without_a_usable_token_is_refused(server: Server) -> None:
    body = encode(note(new_patient("Bo", "Billet")))
    for what, authorization in bad_authorisations(server).items():
        headers = {"Content-Type": FHIR_JSON, **({"Authorization": authorization} if authorization else {})}
        r = assert_refused_and_nothing_stored(
            server, lambda h=headers: server.client.post("/fhir/Bundle", content=body, headers=h), 401)
        assert {"no-token", "bad-token"} & s.finding_codes(r.json()), what


# -- size ----------------------------------------------------------------------------------------------------------

def oversize_note() -> bytes:
    filler = "<p>" + "Smerter stabile. " * (LIMIT // 16) + "</p>"
    body = encode(note(new_patient("Cecilie", "Cirkus"), note_html=filler))
    assert len(body) > LIMIT
    return body


def test_a_body_over_the_limit_is_refused(server: Server) -> None:
    body = oversize_note()
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body), 413)
    assert str(LIMIT) in r.json()["issue"][0]["diagnostics"]


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    body = oversize_note()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    assert_refused_and_nothing_stored(server, lambda: server.client.post(
        "/fhir/Bundle", content=chunks(), headers=server.auth(source(), **{"Content-Type": FHIR_JSON})), 413)


@pytest.mark.parametrize("route", ["/blocks", "/admin/relations"])
def test_admin_and_block_bodies_over_the_limit_are_refused(server: Server, route: str) -> None:
    p = new_patient("Dina", "Dug")
    who = ADMIN
    body = {"patient": p.cpr, "kind": "general", "evidence": "referral", "organisation": "1",
            "padding": "x" * (LIMIT + 1)}
    assert_refused_and_nothing_stored(server, lambda: server.request("POST", route, who, json=body), 413)


# -- bad bodies and parameters elsewhere ---------------------------------------------------------------------------

@pytest.mark.parametrize("route,method,content,code,where", [
    ("/blocks", "POST", b"{kind: general}", "not-json", "the request body"),
    ("/blocks", "POST", b'["general"]', "not-json", "the request body"),
    ("/admin/relations", "POST", b"not json", "not-json", "the request body"),
    ("/admin/relations", "POST", b'{"patient": 1505629996, "evidence": "referral", "organisation": "1"}',
     "relation-body", "patient"),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "referral"}', "relation-body",
     "organisation"),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "x", "organisation": "1", "start": "i gar"}',
     "bad-date", "i gar"),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "x", "organisation": "1", "end": 17}',
     "bad-field", "end"),
    ("/fhir/DocumentReference/some-id", "PATCH", b"\xff\xfe", "not-json", "the request body"),
    ("/fhir/DocumentReference/some-id", "PATCH", b"null", "not-json", "the request body"),
])
def test_a_malformed_body_gets_an_operation_outcome(server: Server, route: str, method: str,
                                                    content: bytes, code: str, where: str) -> None:
    r = assert_refused_and_nothing_stored(
        server, lambda: server.request(method, route, ADMIN, content=content,
                                       headers={"Content-Type": "application/json"}), 400)
    assert_issue(r, code, where)


@pytest.mark.parametrize("route,body,field", [
    ("/blocks", {"kind": "professional", "clinician": ["A1", "A2"]}, "clinician"),
    ("/blocks", {"kind": "professional", "clinician": "A" * 100}, "clinician"),
    ("/admin/relations", {"patient": "ikke et CPR-nummer, men en lang tekst", "organisation": "1", "evidence": "x"},
     "patient"),
    ("/admin/relations", {"patient": "0101709996", "organisation": "1" * 60, "evidence": "referral"}, "organisation"),
], ids=["clinician as a list", "clinician of 100 characters", "patient not a CPR number", "SOR of 60 digits"])
def test_block_and_relation_fields_are_checked(server: Server, route: str, body: dict[str, Any], field: str) -> None:
    p = new_patient("Lise", "Lem")
    body = {"patient": p.cpr, **body}
    r = assert_refused_and_nothing_stored(server, lambda: server.request("POST", route, ADMIN, json=body), 400)
    assert "internal" not in s.finding_codes(r.json())
    assert_issue(r, "bad-field", field)


@pytest.mark.parametrize("params,code,where", [
    ({"_count": "ti"}, "bad-count", "_count"),
    ({"_offset": "1.5"}, "bad-count", "_offset"),
    ({"date": "i går"}, "bad-date", "i går"),
    ({"date": "ge2026-13-45"}, "bad-date", "ge2026-13-45"),
    ({"patient.identifier": "urn:oid:1.2.208.176.1.1|481751000016007"}, "patient-system", "patient.identifier"),
])
def test_a_malformed_search_gets_an_operation_outcome(server: Server, params: dict[str, str], code: str,
                                                      where: str) -> None:
    p = new_patient("Erna", "Eng")
    query = {"patient.identifier": p.identifier, "status": "current", **params}
    r = assert_refused_and_nothing_stored(server, lambda: server.get("/fhir/DocumentReference", citizen(p),
                                                                     params=query), 400)
    assert_issue(r, code, where)


def test_an_unknown_override_reason_gets_an_operation_outcome(server: Server) -> None:
    p = new_patient("Finn", "Fod")
    doctor = s.clinician("R2001")
    server.relate(p, clinician_id=doctor.auth_id)
    r = assert_refused_and_nothing_stored(
        server, lambda: server.search(doctor, p, headers={"X-Consent-Override": "true"}), 400)
    assert "override-reason" in s.finding_codes(r.json())


def test_unknown_routes_and_methods_get_an_operation_outcome(server: Server) -> None:
    for method, path, status in [("GET", "/fhir/Patient", 404), ("GET", "/nothing-here", 404), ("POST", "/", 405),
                                 ("GET", "/fhir/Bundle", 405), ("PUT", "/fhir/DocumentReference/x", 405),
                                 ("DELETE", "/fhir/Bundle/x", 405), ("GET", "/admin/relations", 405)]:
        r = server.request(method, path, ADMIN)
        assert r.status_code == status, (method, path)
        assert is_outcome(r), (method, path)


def test_refusals_are_explained_in_danish_on_request(server: Server) -> None:
    r = server.submit(citizen(new_patient("Gerda", "Gård")), note(), **{"Accept-Language": "da"})
    assert r.status_code == 403
    assert r.json()["issue"][0]["diagnostics"] == "kun et lægesystem (rolle source) kan dele dokumenter"


# -- the `kroniker token` command ------------------------------------------------------------------------------

def kroniker(*args: str, home: Path, stdin: str | None = None, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KRONIKER_TOKEN_MAX_HOURS"}  # the user's own setting
    env.update(KRONIKER_HOME=str(home), **env_vars)
    return subprocess.run([sys.executable, "-m", "kroniker", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=False, input=stdin)


def test_a_token_from_the_command_line_is_accepted_by_the_server(server: Server) -> None:
    home = server.settings.home
    made = kroniker("token", "--role", "source", "--sor", GP_CLINIC.sor, "--ydernummer", GP_CLINIC.ydernummer,
                    home=home)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    r = server.client.post("/fhir/Bundle", content=encode(note(new_patient("Hugo", "Hegn"))),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text


def test_a_token_from_claims_on_standard_input_carries_them(server: Server) -> None:
    # The shape `kroniker conformance run --token-command` writes (docs/conformance.md): the caller's claims.
    claims = {"role": "clinician", "auth_id": "SK7002", "sor": HOSPITAL_SOR, "name": "Sofie Krag",
              "org_name": "Rygcentret"}
    made = kroniker("token", "--claims-stdin", home=server.settings.home, stdin=json.dumps(claims))
    assert made.returncode == 0, made.stderr
    p = verify(server.key, made.stdout.strip())
    assert (p.role, p.auth_id, p.sor, p.name, p.org_name, p.cpr) == ("clinician", "SK7002", HOSPITAL_SOR,
                                                                      "Sofie Krag", "Rygcentret", None)
    # An option given as well wins over the claims.
    made = kroniker("token", "--claims-stdin", "--name", "Anden Navn", home=server.settings.home,
                    stdin=json.dumps(claims))
    assert verify(server.key, made.stdout.strip()).name == "Anden Navn"


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"role": 7}', '{"role": "king"}',
                                   '{"role": "citizen"}', '{"role": "source", "sor": "' + "1" * 70_000 + '"}'])
def test_claims_on_standard_input_that_cannot_make_a_token_are_refused(stdin: str, tmp_path: Path) -> None:
    made = kroniker("token", "--claims-stdin", home=tmp_path, stdin=stdin)
    assert made.returncode == 2 and made.stdout == ""
    assert made.stderr.startswith("kroniker token: ") and "Traceback" not in made.stderr


def test_the_command_line_will_not_make_a_token_the_server_would_refuse(server: Server) -> None:
    home = server.settings.home
    made = kroniker("token", "--role", "source", "--sor", GP_CLINIC.sor, "--hours", "48", home=home)
    assert made.returncode == 2 and made.stdout == ""
    assert "24 hours" in made.stderr and "Traceback" not in made.stderr
    # A data directory whose servers allow longer tokens may make them; this server (24 hours) refuses one.
    made = kroniker("token", "--role", "source", "--sor", GP_CLINIC.sor, "--hours", "48", home=home,
                    KRONIKER_TOKEN_MAX_HOURS="72")
    assert made.returncode == 0, made.stderr
    r = assert_refused_and_nothing_stored(server, lambda: server.client.get(
        "/fhir/AuditEvent", headers={"Authorization": f"Bearer {made.stdout.strip()}"}), 401)
    assert "bad-token" in s.finding_codes(r.json())


def test_a_token_of_the_maximum_lifetime_is_accepted(server: Server) -> None:
    token = issue(server.key, ADMIN, lifetime=server.settings.max_token_lifetime)
    assert server.client.get("/fhir/AuditEvent", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("args", [["--role", "citizen"], ["--role", "clinician", "--auth-id", "X1"],
                                  ["--role", "source"]])
def test_the_command_line_will_not_make_a_token_without_the_callers_identity(args: list[str],
                                                                             tmp_path: Path) -> None:
    made = kroniker("token", *args, home=tmp_path)
    assert made.returncode == 2
    assert made.stdout == ""
    assert "Traceback" not in made.stderr


# -- concurrency ---------------------------------------------------------------------------------------------

def test_the_same_document_sent_concurrently_is_stored_once(server: Server) -> None:
    p = new_patient("Ida", "Ind")
    body = encode(note(p))

    def send(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            return c.post("/fhir/Bundle", content=body,
                          headers=server.auth(source(), **{"Content-Type": FHIR_JSON})).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(8)))
    assert sorted(statuses) == [200] * 7 + [201]
    assert len(s.entries(server.search(citizen(p), p).json())) == 1
    assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []


def test_concurrent_submissions_keep_the_audit_chain_whole(server: Server) -> None:
    p = new_patient("Jørn", "Jern")
    bodies = [encode(note(p)) for _ in range(12)]

    def send(body: bytes) -> int:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            return c.post("/fhir/Bundle", content=body,
                          headers=server.auth(source(), **{"Content-Type": FHIR_JSON})).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(send, bodies))
    assert statuses == [201] * 12
    assert audit.verify(server.engine, audit.load_key(server.settings.audit_key_file)) == []
    submissions = [r for r in audit.iter_all(server.engine) if r["patient_cpr"] == p.cpr and r["action"] == "submit"]
    assert len(submissions) == 12


def test_xml_and_json_of_the_same_document_are_not_silently_two(server: Server) -> None:
    p = new_patient("Karl", "Kant")
    doc = note(p)
    server.shared(source(), doc)
    r = server.submit(source(), to_xml(doc).encode(), content_type=FHIR_XML)
    # spec/medcom-standards.md §16: XML and JSON renderings are the same document. Either the same entry or a
    # refusal that says the identifier is taken; never a second current document.
    assert r.status_code in (200, 409), r.text
    assert len(s.entries(server.search(citizen(p), p).json())) == 1
    assert json.loads(r.text)["resourceType"] in ("DocumentReference", "OperationOutcome")


# -- hostile requests that once answered 500 (issue 9, item 3): each now a refusal with its own finding -----------

def refused(server: Server, send: Any, status: int, code: str) -> httpx.Response:
    """A request that must be refused with `status` and finding `code`, store untouched, the refusal audited."""
    r = assert_refused_and_nothing_stored(server, send, status)
    assert code in s.finding_codes(r.json()), r.text[:500]
    return r


def ascii_json(value: Any) -> bytes:
    """JSON as a hostile client may send it: \\u escapes for NUL and lone surrogates (which UTF-8 cannot carry)."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def test_dates_at_the_ends_of_the_calendar_are_answered(server: Server) -> None:
    """FHIR date search: le9999-12-31 holds for every time there is, gt9999-12-31 and lt0001-01-01 for none."""
    p = new_patient("Ole", "Overløb")
    d = server.shared(source(), note(p))
    for date, expected in [("le9999-12-31", {d["id"]}), ("ge0001-01-01", {d["id"]}), ("gt9999-12-31", set()),
                           ("lt0001-01-01", set()), ("eq9999-12-31", set()), ("le9999-12-31T23:59:59Z", {d["id"]}),
                           ("ge0001-01-01T00:00:00Z", {d["id"]})]:
        r = server.search(citizen(p), p, date=date)
        assert r.status_code == 200, (date, r.text[:300])
        assert s.ids(r.json()) == expected, date


@pytest.mark.parametrize("date", ["ge9999-12-31T23:59:59-05:00", "le0001-01-01T00:00:00+01:00", "ne2026-01-01",
                                  "ge2026-01-01junk", "20260101", "2026-1-1"])
def test_a_date_that_is_no_fhir_date_or_leaves_the_calendar_is_refused(server: Server, date: str) -> None:
    p = new_patient("Oda", "Overløb")
    refused(server, lambda: server.search(citizen(p), p, date=date), 400, "bad-date")


@pytest.mark.parametrize("route", ["/fhir/DocumentReference", "/fhir/AuditEvent"])
@pytest.mark.parametrize("param,value", [("_count", "²"), ("_count", "٣"), ("_count", "1_0"), ("_count", " 5"),
                                         ("_offset", "9" * 5000), ("_offset", "9" * 20), ("_offset", "-1")],
                         ids=["superscript two", "arabic-indic three", "underscore", "space", "5000 digits",
                              "20 digits", "negative"])
def test_count_and_offset_are_ascii_whole_numbers_of_at_most_nine_digits(server: Server, route: str, param: str,
                                                                         value: str) -> None:
    p = new_patient("Palle", "Paging")
    query = {"patient.identifier": p.identifier, "status": "current", param: value}
    refused(server, lambda: server.get(route, citizen(p), params=query), 400, "bad-count")


def test_a_parameter_repeated_1200_times_is_refused_before_the_database_sees_it(server: Server) -> None:
    p = new_patient("Rita", "Repetition")
    base = [("patient.identifier", p.identifier), ("status", "current")]
    # As the attacker sent it (14 KB): longer than a query may be. Short values: more parameters than allowed.
    def get(*extra: tuple[str, str]) -> httpx.Response:
        return server.get("/fhir/DocumentReference", citizen(p), params=[*base, *extra])

    refused(server, lambda: get(*[("type", "a|b")] * 1200), 414, "query-too-long")
    refused(server, lambda: get(*[("type", "")] * 1200), 400, "too-many-params")
    query = [("patient.identifier", p.identifier), ("status", "current"), *[("type", "a|b")] * 17]
    refused(server, lambda: server.get("/fhir/DocumentReference", citizen(p), params=query), 400, "param-repeated")


def test_the_largest_search_the_limits_allow_is_answered(server: Server) -> None:
    """64 parameters (the most), 16 occurrences each of four token parameters with 32 values each, sent as a
    form: within every limit, and within what both databases take in one statement (SQLite's expression depth of
    1,000 is what ended the search with 1,200 type parameters)."""
    p = new_patient("Lis", "Lang")
    d = server.shared(source(), note(p))
    lbp = "http://snomed.info/sct|866144008"  # the Shared Note's type (docs/server.md)
    types = ",".join([lbp, *[f"urn:oid:2.16.840.1.113883.6.96|{n}" for n in range(31)]])
    numbers = ",".join(str(n) for n in range(32))
    base = [("patient.identifier", p.identifier), ("status", "current")]
    widest = [*base, *[("type", types)] * 16, *[("category", numbers)] * 16,
              *[("author.identifier", numbers)] * 16, *[("event", numbers)] * 14]
    assert len(widest) == 64

    def search(items: list[tuple[str, str]]) -> httpx.Response:
        return server.request("POST", "/fhir/DocumentReference/_search", citizen(p), content=urlencode(items),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})

    r = search(widest)
    assert r.status_code == 200, r.text[:300]
    assert s.ids(r.json()) == set()  # the note has none of those categories: the query ran, all of it
    r = search([*base, *[("type", types)] * 16])
    assert r.status_code == 200, r.text[:300]
    assert s.ids(r.json()) == {d["id"]}


def test_too_many_parameters_too_many_values_and_a_long_query_are_refused(server: Server) -> None:
    p = new_patient("Tove", "Tæt")
    base = [("patient.identifier", p.identifier), ("status", "current")]

    def get(*extra: tuple[str, str]) -> httpx.Response:
        return server.get("/fhir/DocumentReference", citizen(p), params=[*base, *extra])

    refused(server, lambda: get(*[(f"x{i}", "1") for i in range(63)]), 400, "too-many-params")
    refused(server, lambda: get(("type", ",".join("a" * 33))), 400, "too-many-values")
    refused(server, lambda: get(("type", "a" * 9000)), 414, "query-too-long")
    refused(server, lambda: get(("_count", "1"), ("_count", "2")),
            400, "param-once")


@pytest.mark.parametrize("content_type,body", [
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\ncurrent"),
    ("multipart/form-data", b"--x--"),
    ("multipart/form-data; boundary=", b"\r\n\r\n"),
    ("application/json", b'{"status": "current"}'),
    (None, b"status=current"),
], ids=["truncated multipart", "multipart without boundary", "empty boundary", "JSON", "no content type"])
def test_a_search_form_that_is_not_urlencoded_is_refused_unparsed(server: Server, content_type: str | None,
                                                                  body: bytes) -> None:
    p = new_patient("Mona", "Multipart")
    headers = {"Content-Type": content_type} if content_type else {}
    refused(server, lambda: server.request("POST", "/fhir/DocumentReference/_search", citizen(p), content=body,
                                           headers=headers), 415, "form-media-type")


def test_a_search_form_over_the_limit_is_not_read(server: Server) -> None:
    p = new_patient("Frede", "Form")
    form = urlencode({"patient.identifier": p.identifier, "status": "current", "type": "x" * (LIMIT + 1)})
    refused(server, lambda: server.request("POST", "/fhir/DocumentReference/_search", citizen(p), content=form,
                                           headers={"Content-Type": "application/x-www-form-urlencoded"}),
            413, "too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        data = form.encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    refused(server, lambda: server.request("POST", "/fhir/DocumentReference/_search", citizen(p), content=chunks(),
                                           headers={"Content-Type": "application/x-www-form-urlencoded"}),
            413, "too-large")


@pytest.mark.parametrize("method,path", [("GET", "/fhir/DocumentReference"), ("GET", "/metadata"),
                                         ("DELETE", "/blocks/x"), ("GET", "/fhir/AuditEvent")])
def test_a_route_that_takes_no_body_refuses_one(server: Server, method: str, path: str) -> None:
    refused(server, lambda: server.request(method, path, ADMIN, content=b"x" * 100), 413, "no-body")


DEEP = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("method,route", [("POST", "/blocks"), ("POST", "/admin/relations"),
                                          ("PATCH", "/fhir/DocumentReference/x")])
@pytest.mark.parametrize("body", [DEEP[:LIMIT - 10], b'{"kind": "general", "x": ' + b"[" * 9 + b"]" * 9 + b"}"],
                         ids=["deeper than Python's stack", "nine levels"])
def test_deep_json_is_refused_before_it_is_parsed(server: Server, method: str, route: str, body: bytes) -> None:
    refused(server, lambda: server.request(method, route, ADMIN, content=body,
                                           headers={"Content-Type": "application/json"}), 400, "too-deep")


@pytest.mark.parametrize("text", ["\ud800", "a\x00b", "\x1b[31m"], ids=["lone surrogate", "NUL", "escape"])
def test_text_no_database_can_store_is_refused_in_json_bodies(server: Server, text: str) -> None:
    p = new_patient("Sara", "Surrogat")
    d = server.shared(source(), note(p))
    patch = ascii_json({"status": "entered-in-error", "reason": f"forkert patient {text}"})
    refused(server, lambda: server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN, content=patch),
            400, "bad-text")
    assert server.status_of(d["id"]) == "current"
    block = ascii_json({"patient": p.cpr, "kind": "general", f"note{text}": "x"})
    refused(server, lambda: server.request("POST", "/blocks", citizen(p), content=block), 400, "bad-text")
    relation = ascii_json({"patient": p.cpr, "organisation": "1", "evidence": "referral", "x": text})
    refused(server, lambda: server.request("POST", "/admin/relations", ADMIN, content=relation), 400, "bad-text")


@pytest.mark.parametrize("text", ["\ud800", "Journal\x00notat", "\udfff\ud800"], ids=["lone surrogate", "NUL",
                                                                                     "reversed pair"])
def test_a_document_with_text_no_database_can_store_is_refused(server: Server, text: str) -> None:
    doc = note(new_patient("Nina", "Nul"))
    s.composition(doc)["title"] = text
    r = refused(server, lambda: server.submit(source(), ascii_json(doc)), 422, "encoding")
    assert "title" in r.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("path", ["/fhir/Bundle/%00", "/fhir/DocumentReference/%00", "/fhir/Bundle/a%00b",
                                  "/fhir/DocumentReference/" + "x" * 65])
def test_an_id_that_is_no_fhir_id_is_not_here(server: Server, path: str) -> None:
    refused(server, lambda: server.get(path, ADMIN), 404, "unknown-document")


def test_nul_in_parameters_and_block_ids_is_refused(server: Server) -> None:
    p = new_patient("Nikolaj", "Nul")
    refused(server, lambda: server.search(citizen(p), p, type="\x00"), 400, "bad-text")
    refused(server, lambda: server.get("/fhir/AuditEvent", ADMIN, params={"patient.identifier": "\x00"}),
            400, "bad-text")
    refused(server, lambda: server.get("/blocks", ADMIN, params={"patient": "01017\x0099"}), 400, "bad-text")
    refused(server, lambda: server.request("DELETE", "/blocks/%00", citizen(p)), 404, "unknown-block")


@pytest.mark.parametrize("patient", ["12345", "0101709996x", "Patient/", "abcdefghij"])
def test_a_patient_that_is_no_cpr_number_is_refused(server: Server, patient: str) -> None:
    p = new_patient("Carl", "Cpr")
    if patient == "Patient/":  # names no patient at all
        refused(server, lambda: server.get("/fhir/DocumentReference", citizen(p),
                                           params={"patient": patient, "status": "current"}),
                400, "XDSStoredQueryMissingParam")
        return
    refused(server, lambda: server.get("/fhir/DocumentReference", citizen(p),
                                       params={"patient.identifier": f"{s.CPR_SYSTEM}|{patient}", "status": "current"}),
            400, "patient-format")
    refused(server, lambda: server.get("/fhir/AuditEvent", ADMIN, params={"patient": patient}), 400, "patient-format")


@pytest.mark.parametrize("path", ["/fhir/DocumentReference/", "/fhir/Bundle%2F", "/metadata/", "/fhir/Bundle/x/",
                                  "/blocks/"])
def test_a_trailing_or_encoded_slash_is_not_redirected_to_the_host_header(server: Server, path: str) -> None:
    """Starlette's redirect_slashes answered these with 307 to http://<Host>/…, unaudited."""
    r = refused(server, lambda: server.client.get(path, headers={"Host": "evil.example", **server.auth(ADMIN)}),
                404, "no-route")
    assert "location" not in r.headers and "evil.example" not in r.text


@pytest.mark.parametrize("content_type", ["Application/FHIR+JSON; charset=UTF-8", "APPLICATION/JSON",
                                          "application/fhir+json;charset=utf-8", "Application/Fhir+Json"])
def test_media_types_are_case_insensitive(server: Server, content_type: str) -> None:
    p = new_patient("Carla", "Case")
    r = server.submit(source(), note(p), content_type=content_type)
    assert r.status_code == 201, r.text[:300]
    r = server.request("POST", "/fhir/DocumentReference/_search", citizen(p),
                       content=urlencode({"patient.identifier": p.identifier, "status": "current"}),
                       headers={"Content-Type": "Application/X-WWW-Form-Urlencoded; Charset=UTF-8"})
    assert r.status_code == 200 and len(s.entries(r.json())) == 1, r.text[:300]
    stored = s.entries(r.json())[0]
    got = server.client.get(stored["content"][0]["attachment"]["url"],
                            headers=server.auth(citizen(p), Accept="Application/FHIR+JSON"))
    assert got.status_code == 200


def test_an_unacceptable_retrieve_is_not_logged_as_a_look_up(server: Server) -> None:
    p = new_patient("Ada", "Accept")
    doctor = s.clinician("R4711")
    server.relate(p, clinician_id=doctor.auth_id)
    d = server.shared(source(), note(p))
    r = server.client.get(d["content"][0]["attachment"]["url"], headers=server.auth(doctor, Accept="application/pdf"))
    assert r.status_code == 406 and is_outcome(r)
    assert [e for e in server.minlog(p) if e["subtype"][0]["code"] == "ITI-68"] == []
    # refused at content negotiation, before the document was looked up: no ITI-68 record at all
    assert [e for e in server.audit_log(p) if e["subtype"][0]["code"] == "ITI-68"] == []


@pytest.mark.parametrize("path", ["/metadata", "/health"])
def test_the_public_routes_are_audited_too(server: Server, path: str) -> None:
    """Found by the fuzz (test_server_fuzz.py) on the old server: every request is in the audit log, these too."""
    before = server.rows()
    assert server.get(path).status_code == 200
    after = server.rows()
    assert {t: after[t] - before[t] for t in after} == {
        "documents": 0, "document_events": 0, "treatment_relations": 0, "blocks": 0, "audit_events": 1,
        "clinical_resources": 0}
