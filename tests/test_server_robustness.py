"""Malformed requests to the reference server: unreadable documents, wrong content types, missing or bad tokens,
bodies over Settings.max_request_bytes, bad parameters. Each gets an OperationOutcome, never a stack trace, and a
refused submission leaves nothing behind. Also the `kroniker token` command and concurrent submissions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from kroniker.reference_server import audit
from kroniker.reference_server.tokens import issue
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.server_support import (
    ADMIN,
    FHIR_JSON,
    FHIR_XML,
    GP_CLINIC,
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
        "documents": 0, "document_events": 0, "treatment_relations": 0, "blocks": 0, "audit_events": 1}
    return r


# -- documents that cannot be read ------------------------------------------------------------------------------

NOT_DOCUMENTS: dict[str, tuple[bytes, str]] = {
    "bad JSON": (b'{"resourceType": "Bundle", "type": "document", ', FHIR_JSON),
    "not a Bundle": (b'{"resourceType": "Patient", "id": "x"}', FHIR_JSON),
    "a Bundle, but no document": (b'{"resourceType": "Bundle", "type": "collection"}', FHIR_JSON),
    "a JSON array": (b"[1, 2, 3]", FHIR_JSON),
    "a JSON string": (b'"Journalnotat"', FHIR_JSON),
    "an empty body": (b"", FHIR_JSON),
    "not UTF-8": ("{\"title\": \"Lænderyg\"}".encode("latin-1"), FHIR_JSON),
    "a PDF": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", FHIR_JSON),
    "broken XML": (b'<Bundle xmlns="http://hl7.org/fhir"><type value="document"/>', FHIR_XML),
    "XML with an external entity": (b'<?xml version="1.0"?><!DOCTYPE b [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                    b'<Bundle xmlns="http://hl7.org/fhir"><id value="&x;"/></Bundle>', FHIR_XML),
    "not a FHIR XML resource": (b"<html><body>Journalnotat</body></html>", FHIR_XML),
}


@pytest.mark.parametrize("kind", list(NOT_DOCUMENTS))
def test_a_body_that_is_not_a_medcom_document_is_refused_with_an_operation_outcome(server: Server, kind: str) -> None:
    body, content_type = NOT_DOCUMENTS[kind]
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body, content_type=content_type),
                                          (400, 422))
    assert any(i["severity"] in ("error", "fatal") for i in r.json()["issue"])
    assert "root:" not in r.text and "/etc/passwd" not in r.text.replace("file:///etc/passwd", "")


def test_a_number_too_long_to_read_is_a_finding_not_a_crash(server: Server) -> None:
    body = b'{"resourceType": "Bundle", "type": "document", "total": ' + b"9" * 5000 + b"}"
    r = assert_refused_and_nothing_stored(server, lambda: server.submit(source(), body), (400, 422))
    assert "internal" not in s.finding_codes(r.json())


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

@pytest.mark.parametrize("route,method,content", [
    ("/blocks", "POST", b"{kind: general}"),
    ("/blocks", "POST", b'["general"]'),
    ("/admin/relations", "POST", b"not json"),
    ("/admin/relations", "POST", b'{"patient": 1505629996, "evidence": "referral", "organisation": "1"}'),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "referral"}'),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "x", "organisation": "1", "start": "i gar"}'),
    ("/admin/relations", "POST", b'{"patient": "0101709996", "evidence": "x", "organisation": "1", "end": 17}'),
    ("/fhir/DocumentReference/some-id", "PATCH", b"\xff\xfe"),
    ("/fhir/DocumentReference/some-id", "PATCH", b"null"),
])
def test_a_malformed_body_gets_an_operation_outcome(server: Server, route: str, method: str,
                                                    content: bytes) -> None:
    assert_refused_and_nothing_stored(
        server, lambda: server.request(method, route, ADMIN, content=content,
                                       headers={"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize("route,body", [
    ("/blocks", {"kind": "professional", "clinician": ["A1", "A2"]}),
    ("/blocks", {"kind": "professional", "clinician": "A" * 100}),
    ("/admin/relations", {"patient": "ikke et CPR-nummer, men en lang tekst", "organisation": "1", "evidence": "x"}),
    ("/admin/relations", {"patient": "0101709996", "organisation": "1" * 60, "evidence": "referral"}),
], ids=["clinician as a list", "clinician of 100 characters", "patient not a CPR number", "SOR of 60 digits"])
def test_block_and_relation_fields_are_checked(server: Server, route: str, body: dict[str, Any]) -> None:
    p = new_patient("Lise", "Lem")
    body = {"patient": p.cpr, **body}
    r = assert_refused_and_nothing_stored(server, lambda: server.request("POST", route, ADMIN, json=body), 400)
    assert "internal" not in s.finding_codes(r.json())


@pytest.mark.parametrize("params", [
    {"_count": "ti"},
    {"_offset": "1.5"},
    {"date": "i går"},
    {"date": "ge2026-13-45"},
    {"patient.identifier": "urn:oid:1.2.208.176.1.1|481751000016007"},
])
def test_a_malformed_search_gets_an_operation_outcome(server: Server, params: dict[str, str]) -> None:
    p = new_patient("Erna", "Eng")
    query = {"patient.identifier": p.identifier, "status": "current", **params}
    assert_refused_and_nothing_stored(server, lambda: server.get("/fhir/DocumentReference", citizen(p),
                                                                 params=query), 400)


def test_an_unknown_override_reason_gets_an_operation_outcome(server: Server) -> None:
    p = new_patient("Finn", "Fod")
    doctor = s.clinician("R2001")
    server.relate(p, clinician_id=doctor.auth_id)
    r = assert_refused_and_nothing_stored(
        server, lambda: server.search(doctor, p, headers={"X-Consent-Override": "true"}), 400)
    assert "override-reason" in s.finding_codes(r.json())


def test_unknown_routes_and_methods_get_an_operation_outcome(server: Server) -> None:
    for method, path, status in [("GET", "/fhir/Patient", 404), ("GET", "/", 404), ("GET", "/fhir/Bundle", 405),
                                 ("PUT", "/fhir/DocumentReference/x", 405), ("DELETE", "/fhir/Bundle/x", 405),
                                 ("GET", "/admin/relations", 405)]:
        r = server.request(method, path, ADMIN)
        assert r.status_code == status, (method, path)
        assert is_outcome(r), (method, path)


def test_refusals_are_explained_in_danish_on_request(server: Server) -> None:
    r = server.submit(citizen(new_patient("Gerda", "Gård")), note(), **{"Accept-Language": "da"})
    assert r.status_code == 403
    assert r.json()["issue"][0]["diagnostics"] == "kun et lægesystem (rolle source) kan dele dokumenter"


# -- the `kroniker token` command ------------------------------------------------------------------------------

def kroniker(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KRONIKER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "kroniker", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=False)


def test_a_token_from_the_command_line_is_accepted_by_the_server(server: Server) -> None:
    home = server.settings.home
    made = kroniker("token", "--role", "source", "--sor", GP_CLINIC.sor, "--ydernummer", GP_CLINIC.ydernummer,
                    home=home)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    r = server.client.post("/fhir/Bundle", content=encode(note(new_patient("Hugo", "Hegn"))),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text


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
