"""PATCH /fhir/DocumentReference/{id} in the forms FHIR clients send (http://hl7.org/fhir/R4/http.html#patch).

What the server does with a DocumentReference is mark it entered-in-error, with a reason. FHIR's patch forms say
that as FHIRPath Patch (http://hl7.org/fhir/R4/fhirpatch.html: a Parameters resource whose operation is a
`replace` of `DocumentReference.status` by the code `entered-in-error`, in FHIR JSON or XML) or as JSON Patch
(RFC 6902, application/json-patch+json: `replace` of `/status`, with `test` operations that must hold, §4.6);
the reason, which neither form carries, comes as `?reason=`. RFC 5789 §2.2 gives the refusals: a patch that
cannot be read is 400, an unsupported media type 415, a patch asking for what the server cannot do 422, a
conflicting state (a test that does not hold) 409; If-Match with a version that is not the resource's is 412
(RFC 9110 §13.1.1; FHIR's version-aware updates use the weak ETag W/"<versionId>"). After each refusal the
document is read back: nothing changed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.store import Store
from kroniker.validators.source import Limits
from kroniker.validators.xmlreader import parse_xml
from tests.server_support import (
    ADMIN,
    DPO,
    FHIR_JSON,
    FHIR_XML,
    Server,
    citizen,
    finding_codes,
    is_outcome,
    new_patient,
    note,
    source,
)
from tests.xml_writer import to_xml

pytestmark = pytest.mark.network

JSON_PATCH = "application/json-patch+json"  # RFC 6902 §6
REASON = "notatet hørte til en anden patient"
WITHDRAW = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]


def operation(type_: str = "replace", path: str = "DocumentReference.status",
              value: dict[str, Any] | None = None, *more: dict[str, Any]) -> dict[str, Any]:
    """One FHIRPath Patch operation (fhirpatch.html: a parameter `operation` with parts type, path, value)."""
    parts = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path},
             {"name": "value", **(value if value is not None else {"valueCode": "entered-in-error"})}, *more]
    return {"name": "operation", "part": parts}


def parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations or [operation()])}


def fhirpath_json(params: dict[str, Any]) -> tuple[bytes, str]:
    return json.dumps(params).encode(), FHIR_JSON


def fhirpath_xml(params: dict[str, Any], media: str = FHIR_XML) -> tuple[bytes, str]:
    return to_xml(params).encode(), media


def json_patch(ops: Any) -> tuple[bytes, str]:
    return json.dumps(ops).encode(), JSON_PATCH


def patch(server: Server, doc_id: str, body: tuple[bytes, str], reason: str | None = REASON,
          who: Any = ADMIN, **headers: str) -> httpx.Response:
    content, media = body
    return server.request("PATCH", f"/fhir/DocumentReference/{doc_id}", who, content=content,
                          params={"reason": reason} if reason is not None else None,
                          headers={"Content-Type": media, **headers})


def from_xml(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith(FHIR_XML), r.headers["content-type"]
    parsed = parse_xml("<answer>", r.content, Limits())
    assert parsed.findings == [], parsed.findings
    return parsed.data


def shared(server: Server) -> tuple[Any, dict[str, Any]]:
    p = new_patient("Paula", "Patch")
    return p, server.shared(source(), note(p))


def assert_unchanged(server: Server, p: Any, d: dict[str, Any]) -> None:
    """Read back as the citizen: still current, still version 1 (no new version was made)."""
    r = server.get(f"/fhir/DocumentReference/{d['id']}", citizen(p))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["meta"]["versionId"], r.headers["etag"]) == ("current", "1", 'W/"1"')
    assert server.status_of(d["id"]) == "current"
    history = server.get(f"/fhir/DocumentReference/{d['id']}/_history", citizen(p)).json()
    assert history["total"] == 1


def assert_withdrawn(r: httpx.Response, d: dict[str, Any], server: Server,
                     answer: dict[str, Any] | None = None) -> None:
    assert r.status_code == 200, r.text
    answer = answer if answer is not None else r.json()
    assert answer["resourceType"] == "DocumentReference" and answer["id"] == d["id"]
    assert answer["status"] == "entered-in-error"
    assert answer["meta"]["versionId"] == "2" and r.headers["etag"] == 'W/"2"'
    assert server.status_of(d["id"]) == "entered-in-error"


def last_records(server: Server, n: int) -> list[dict[str, Any]]:
    return list(audit.iter_all(server.engine))[-n:]


# -- FHIRPath Patch -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["json", "fhir+xml", "xml"])
def test_a_fhirpath_patch_marks_the_document_entered_in_error(server: Server, form: str) -> None:
    p, d = shared(server)
    body = {"json": fhirpath_json(parameters()), "fhir+xml": fhirpath_xml(parameters()),
            "xml": fhirpath_xml(parameters(), "application/xml")}[form]
    r = patch(server, d["id"], body)
    assert_withdrawn(r, d, server)
    # The reason is the withdrawal's: in the audit record, and on the document (DocumentReference.description)
    assert r.json()["description"] == REASON
    (rec,) = last_records(server, 1)
    assert (rec["action"], rec["reason"], rec["patient_cpr"]) == ("status", REASON, p.cpr)
    assert json.loads(rec["documents"]) == [d["id"]]
    assert json.loads(rec["detail"]) == {"status": "entered-in-error", "patch": "fhirpath-patch"}
    gone = server.get(d["content"][0]["attachment"]["url"], citizen(p))
    assert gone.status_code == 410


@pytest.mark.parametrize("path", ["status", "DocumentReference . status", "DocumentReference.`status`"])
def test_a_fhirpath_patch_path_is_read_as_fhirpath(server: Server, path: str) -> None:
    """The path is FHIRPath evaluated on the resource: the status with or without the type, with the grammar's
    whitespace and `delimited` identifiers (FHIRPath N1 §3, "Identifiers")."""
    _, d = shared(server)
    assert_withdrawn(patch(server, d["id"], fhirpath_json(parameters(operation(path=path)))), d, server)


def test_an_xml_patch_is_answered_in_xml_when_asked(server: Server) -> None:
    _, d = shared(server)
    r = patch(server, d["id"], fhirpath_xml(parameters()), Accept=FHIR_XML)
    assert_withdrawn(r, d, server, from_xml(r))


# -- JSON Patch -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ops", [
    WITHDRAW,
    [{"op": "test", "path": "/status", "value": "current"}, *WITHDRAW],
    [{"op": "test", "path": "/meta/versionId", "value": "1"}, *WITHDRAW],
    # operations apply in order (RFC 6902 §3): a test after the replace sees the new status
    [*WITHDRAW, {"op": "test", "path": "/status", "value": "entered-in-error"}],
], ids=["replace", "test status first", "test version first", "test after"])
def test_a_json_patch_marks_the_document_entered_in_error(server: Server, ops: list[dict[str, Any]]) -> None:
    p, d = shared(server)
    r = patch(server, d["id"], json_patch(ops))
    assert_withdrawn(r, d, server)
    (rec,) = last_records(server, 1)
    assert (rec["action"], rec["reason"], rec["patient_cpr"]) == ("status", REASON, p.cpr)
    assert json.loads(rec["detail"])["patch"] == "json-patch"


def test_a_json_patch_test_checks_the_resource_as_it_is(server: Server) -> None:
    """A test of the document's own masterIdentifier holds; one that names another value does not (409, the
    patch conflicts with the resource's state: RFC 5789 §2.2), and nothing changes."""
    p, d = shared(server)
    identifier = d["masterIdentifier"]["value"]
    wrong = [{"op": "test", "path": "/masterIdentifier/value", "value": identifier + "x"}, *WITHDRAW]
    r = patch(server, d["id"], json_patch(wrong))
    assert r.status_code == 409 and is_outcome(r)
    assert finding_codes(r.json()) == {"patch-test-failed"}
    assert r.json()["issue"][0]["code"] == "conflict"
    assert "/masterIdentifier/value" in r.json()["issue"][0]["diagnostics"]
    assert_unchanged(server, p, d)
    missing = [{"op": "test", "path": "/docStatus", "value": "final"}, *WITHDRAW]  # not in this DocumentReference
    assert patch(server, d["id"], json_patch(missing)).status_code == 409
    assert_unchanged(server, p, d)
    right = [{"op": "test", "path": "/masterIdentifier/value", "value": identifier}, *WITHDRAW]
    assert_withdrawn(patch(server, d["id"], json_patch(right)), d, server)


def test_a_json_patch_is_answered_in_xml_when_asked(server: Server) -> None:
    _, d = shared(server)
    r = patch(server, d["id"], json_patch(WITHDRAW), Accept=FHIR_XML)
    assert_withdrawn(r, d, server, from_xml(r))


# -- refusals: nothing changes ------------------------------------------------------------------------------------

def value_string() -> dict[str, Any]:
    return {"valueString": "entered-in-error"}


REFUSED: list[tuple[str, tuple[bytes, str], int, str]] = [
    # FHIRPath Patch: well formed, but not what the server can do (422)
    ("another path", fhirpath_json(parameters(operation(path="DocumentReference.description",
                                                        value={"valueString": "x"}))), 422, "patch-unsupported"),
    ("another resource's path", fhirpath_json(parameters(operation(path="Patient.status"))), 422,
     "patch-unsupported"),
    ("an expression, not a path", fhirpath_json(parameters(operation(path="DocumentReference.status.where(true)"))),
     422, "patch-unsupported"),
    ("another value", fhirpath_json(parameters(operation(value={"valueCode": "current"}))), 422,
     "patch-unsupported"),
    ("valueString for the code", fhirpath_json(parameters(operation(value=value_string()))), 422,
     "patch-unsupported"),
    ("a delete", fhirpath_json(parameters({"name": "operation", "part": [
        {"name": "type", "valueCode": "delete"}, {"name": "path", "valueString": "DocumentReference.description"}]})),
     422, "patch-unsupported"),
    ("one good operation and one other", fhirpath_json(parameters(operation(), operation(
        path="DocumentReference.description", value={"valueString": "x"}))), 422, "patch-unsupported"),
    ("another path in XML", fhirpath_xml(parameters(operation(path="DocumentReference.docStatus",
                                                              value={"valueCode": "entered-in-error"}))), 422,
     "patch-unsupported"),
    # FHIRPath Patch: malformed (400)
    ("not FHIRPath", fhirpath_json(parameters(operation(path="DocumentReference..status"))), 400, "patch-fhirpath"),
    ("FHIRPath and a stray character", fhirpath_json(parameters(operation(path="status $$"))), 400,
     "patch-fhirpath"),
    # a parser that recovers from errors reads these as `status`: the whole text is the path, or it is not one
    ("FHIRPath and more", fhirpath_json(parameters(operation(path="status status"))), 400, "patch-fhirpath"),
    ("FHIRPath and a parenthesis", fhirpath_json(parameters(operation(path="DocumentReference.status )"))), 400,
     "patch-fhirpath"),
    ("an unknown type", fhirpath_json(parameters(operation(type_="set"))), 400, "patch-parameters"),
    ("no operation", fhirpath_json({"resourceType": "Parameters"}), 400, "patch-parameters"),
    ("a parameter not an operation", fhirpath_json(parameters({"name": "status", "valueCode": "entered-in-error"})),
     400, "patch-parameters"),
    ("a replace with an index", fhirpath_json(parameters(operation("replace", "DocumentReference.status", None,
                                                                   {"name": "index", "valueInteger": 0}))),
     400, "patch-parameters"),
    ("a part twice", fhirpath_json(parameters(operation("replace", "DocumentReference.status", None,
                                                        {"name": "path", "valueString": "status"}))),
     400, "patch-parameters"),
    ("not Parameters", fhirpath_json({"resourceType": "DocumentReference", "status": "entered-in-error"}), 400,
     "patch-parameters"),
    ("no operation in XML", fhirpath_xml({"resourceType": "Parameters"}), 400, "patch-parameters"),
    # JSON Patch: well formed, but not what the server can do (422)
    ("add", json_patch([{"op": "add", "path": "/status", "value": "entered-in-error"}]), 422, "patch-unsupported"),
    ("remove", json_patch([*WITHDRAW, {"op": "remove", "path": "/description"}]), 422, "patch-unsupported"),
    ("replace another member", json_patch([{"op": "replace", "path": "/docStatus", "value": "entered-in-error"}]),
     422, "patch-unsupported"),
    ("replace with another status", json_patch([{"op": "replace", "path": "/status", "value": "current"}]), 422,
     "patch-unsupported"),
    ("only a test", json_patch([{"op": "test", "path": "/status", "value": "current"}]), 422, "patch-unsupported"),
    ("an empty patch", json_patch([]), 422, "patch-unsupported"),
    # JSON Patch: malformed (400)
    ("an object, not an array", json_patch(WITHDRAW[0]), 400, "patch-json-patch"),
    ("no op", json_patch([{"path": "/status", "value": "entered-in-error"}]), 400, "patch-json-patch"),
    ("an unknown op", json_patch([{"op": "set", "path": "/status", "value": "entered-in-error"}]), 400,
     "patch-json-patch"),
    ("a path not a JSON Pointer", json_patch([{"op": "replace", "path": "status", "value": "entered-in-error"}]),
     400, "patch-json-patch"),
    ("a replace with no value", json_patch([{"op": "replace", "path": "/status"}]), 400, "patch-json-patch"),
    ("not JSON", (b"[{op: replace}]", JSON_PATCH), 400, "not-json"),
    # media types PATCH does not take (415)
    ("merge patch", (json.dumps({"status": "entered-in-error"}).encode(), "application/merge-patch+json"), 415,
     "patch-media-type"),
    ("text", (b"status=entered-in-error", "text/plain"), 415, "patch-media-type"),
]


@pytest.mark.parametrize("body,status,finding", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_patch_the_server_cannot_do_is_refused_and_changes_nothing(
        server: Server, body: tuple[bytes, str], status: int, finding: str) -> None:
    p, d = shared(server)
    r = patch(server, d["id"], body)
    assert r.status_code == status, r.text
    assert is_outcome(r)
    assert finding_codes(r.json()) == {finding}
    (rec,) = last_records(server, 1)
    assert (rec["action"], rec["reason"]) == ("refused", finding)
    assert_unchanged(server, p, d)


def test_what_the_server_can_do_is_said_in_danish_and_english(server: Server) -> None:
    p, d = shared(server)
    body = json_patch([{"op": "replace", "path": "/docStatus", "value": "x"}])
    en = patch(server, d["id"], body).json()["issue"][0]["diagnostics"]
    da = patch(server, d["id"], body, **{"Accept-Language": "da"}).json()["issue"][0]["diagnostics"]
    assert en != da
    for text in (en, da):
        assert "DocumentReference.status" in text and "/status" in text and "entered-in-error" in text
        assert "/docStatus" in text
    assert "kan kun" in da and "can only" in en
    assert_unchanged(server, p, d)


@pytest.mark.parametrize("form", ["json-patch", "fhirpath-json", "fhirpath-xml"])
@pytest.mark.parametrize("reason", [None, "", "   "], ids=["none", "empty", "blank"])
def test_a_standard_patch_needs_a_reason_in_the_query(server: Server, form: str, reason: str | None) -> None:
    p, d = shared(server)
    body = {"json-patch": json_patch(WITHDRAW), "fhirpath-json": fhirpath_json(parameters()),
            "fhirpath-xml": fhirpath_xml(parameters())}[form]
    r = patch(server, d["id"], body, reason=reason)
    assert r.status_code == 400 and is_outcome(r)
    assert finding_codes(r.json()) == {"patch-reason"}
    assert "?reason=" in r.json()["issue"][0]["diagnostics"]
    assert_unchanged(server, p, d)


@pytest.mark.parametrize("body", [json_patch(WITHDRAW), fhirpath_xml(parameters())], ids=["json-patch", "xml"])
def test_patching_an_unknown_document_is_not_found(server: Server, body: tuple[bytes, str]) -> None:
    r = patch(server, "no-such-document", body)
    assert r.status_code == 404 and is_outcome(r)
    assert finding_codes(r.json()) == {"unknown-document"}


@pytest.mark.parametrize("body", [json_patch(WITHDRAW), fhirpath_json(parameters())], ids=["json-patch", "fhirpath"])
@pytest.mark.parametrize("who", [source(), DPO], ids=["source", "dpo"])
def test_only_an_administrator_may_patch(server: Server, body: tuple[bytes, str], who: Any) -> None:
    p, d = shared(server)
    r = patch(server, d["id"], body, who=who)
    assert r.status_code == 403 and is_outcome(r)
    assert_unchanged(server, p, d)


# -- If-Match: version-aware ----------------------------------------------------------------------------------------

def test_if_match_with_the_current_version_is_honoured_and_a_stale_one_refused(server: Server) -> None:
    p, d = shared(server)
    etag = server.get(f"/fhir/DocumentReference/{d['id']}", citizen(p)).headers["etag"]
    assert etag == 'W/"1"'
    stale = patch(server, d["id"], json_patch(WITHDRAW), **{"If-Match": 'W/"2"'})
    assert stale.status_code == 412 and is_outcome(stale)
    assert finding_codes(stale.json()) == {"patch-stale"}
    assert stale.json()["issue"][0]["code"] == "conflict"
    (rec,) = last_records(server, 1)
    assert (rec["action"], rec["reason"], rec["patient_cpr"]) == ("refused", "patch-stale", p.cpr)
    assert_unchanged(server, p, d)
    r = patch(server, d["id"], fhirpath_json(parameters()), **{"If-Match": etag})
    assert_withdrawn(r, d, server)
    # The version it was is now stale: the same patch again, with the same If-Match, is refused.
    again = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN, headers={"If-Match": etag},
                           json={"status": "entered-in-error", "reason": "igen"})
    assert again.status_code == 412 and finding_codes(again.json()) == {"patch-stale"}
    assert server.status_of(d["id"]) == "entered-in-error"
    with server.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version FROM documents WHERE id = :id"), {"id": d["id"]}).scalar_one()
    assert version == 2


@pytest.mark.parametrize("value", ['"1"', '*', 'W/"7", W/"1"'], ids=["strong", "any", "one of two"])
def test_if_match_takes_a_strong_tag_any_or_a_list(server: Server, value: str) -> None:
    """RFC 9110 §13.1.1: If-Match is `*` or a list of entity tags; any one that names the version will do."""
    _, d = shared(server)
    assert_withdrawn(patch(server, d["id"], json_patch(WITHDRAW), **{"If-Match": value}), d, server)


@pytest.mark.parametrize("value", ["1", "W/1", 'W/"1'])
def test_an_if_match_that_is_no_entity_tag_is_refused(server: Server, value: str) -> None:
    p, d = shared(server)
    r = patch(server, d["id"], json_patch(WITHDRAW), **{"If-Match": value})
    assert r.status_code == 400 and finding_codes(r.json()) == {"patch-if-match"}
    assert_unchanged(server, p, d)


def test_a_status_change_for_another_version_changes_nothing(server: Server) -> None:
    """The store's guard (what If-Match and the tests were checked against is the version changed): a change for
    version 2 of a document at version 1 finds nothing to change, and writes neither a version nor a record."""
    p, d = shared(server)
    store = Store(server.engine, audit.load_key(server.settings.audit_key_file))
    before = len(list(audit.iter_all(server.engine)))
    rec = AuditRecord("status", None, patient_cpr=p.cpr, documents=[d["id"]], reason="test")
    assert store.set_status(d["id"], "entered-in-error", "test", rec, expected_version=2) is None
    assert len(list(audit.iter_all(server.engine))) == before
    assert_unchanged(server, p, d)
    done = store.set_status(d["id"], "entered-in-error", "test", rec, expected_version=1)
    assert done is not None and done.row["version"] == 2


# -- the CapabilityStatement ------------------------------------------------------------------------------------------

def test_the_capability_statement_lists_exactly_the_patch_formats_taken(server: Server) -> None:
    """patchFormat (CapabilityStatement.patchFormat, the patch media types): FHIR's JSON and XML types
    (http.html#mime-type: application/fhir+json and +xml, and the plain JSON and XML types FHIR servers take
    too) for FHIRPath Patch, and RFC 6902's application/json-patch+json. Each is taken; others are 415."""
    cs = server.get("/fhir/metadata").json()
    listed = cs["patchFormat"]
    assert sorted(listed) == sorted(["application/fhir+json", "application/json", "application/fhir+xml",
                                     "application/xml", "text/xml", JSON_PATCH])
    docref = next(r for r in cs["rest"][0]["resource"] if r["type"] == "DocumentReference")
    assert {"code": "patch"} in docref["interaction"]
    for media in listed:
        _, d = shared(server)
        if media == JSON_PATCH:
            body = json_patch(WITHDRAW)
        elif "xml" in media:
            body = fhirpath_xml(parameters(), media)
        else:
            body = fhirpath_json(parameters())[0], media
        assert_withdrawn(patch(server, d["id"], body), d, server)
    for media in ("application/merge-patch+json", "application/xml-patch+xml", "text/plain",
                  "application/x-www-form-urlencoded"):
        p, d = shared(server)
        r = patch(server, d["id"], (json.dumps(WITHDRAW).encode(), media))
        assert r.status_code == 415, media
        assert_unchanged(server, p, d)


def test_kroniker_own_json_still_takes_its_reason_in_the_body(server: Server) -> None:
    _, d = shared(server)
    r = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN,
                       json={"status": "entered-in-error", "reason": REASON})
    assert_withdrawn(r, d, server)
    (rec,) = last_records(server, 1)
    assert (rec["reason"], json.loads(rec["detail"])) == (REASON, {"status": "entered-in-error",
                                                                    "patch": "kroniker"})


# -- the reason as a header (X-Reason), for clients that cannot add a query parameter to a patch -----------------

def test_the_reason_may_come_as_a_percent_encoded_header(server: Server) -> None:
    """fhir-kit-client's patch() sets headers but no query: X-Reason, percent-encoded UTF-8 (RFC 3986 §2.1)."""
    _, d = shared(server)
    danish = "Forkert patient — notatet hører til en anden (æøå)"
    encoded = "".join(c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
                      for c in danish)  # every byte of a non-alphanumeric character escaped, by hand
    r = patch(server, d["id"], json_patch(WITHDRAW), reason=None, **{"X-Reason": encoded})
    assert_withdrawn(r, d, server)
    (rec,) = last_records(server, 1)
    assert (rec["action"], rec["reason"]) == ("status", danish)


def test_the_query_reason_goes_before_the_header(server: Server) -> None:
    _, d = shared(server)
    r = patch(server, d["id"], json_patch(WITHDRAW), reason=REASON, **{"X-Reason": "andet"})
    assert_withdrawn(r, d, server)
    (rec,) = last_records(server, 1)
    assert rec["reason"] == REASON


@pytest.mark.parametrize("value", ["%FF%FE", "%C3", "x" * 9000, "a%00b", "%20%20"],
                         ids=["not-utf8", "cut-utf8", "too-long", "nul", "blank"])
def test_a_reason_header_that_is_no_text_is_refused_and_changes_nothing(server: Server, value: str) -> None:
    p, d = shared(server)
    r = patch(server, d["id"], json_patch(WITHDRAW), reason=None, **{"X-Reason": value})
    assert r.status_code == 400 and is_outcome(r), r.text
    assert finding_codes(r.json()) == ({"patch-reason"} if value == "%20%20" else {"bad-reason-header"})
    assert_unchanged(server, p, d)


@pytest.mark.parametrize("media", [FHIR_JSON, "application/json", None])
def test_a_json_patch_sent_as_plain_json_is_told_its_media_type(server: Server, media: str | None) -> None:
    """RFC 5789 §2.2: an unsupported patch document is 415; the answer names the type RFC 6902 registers."""
    p, d = shared(server)
    headers = {"Content-Type": media} if media else {}
    r = server.request("PATCH", f"/fhir/DocumentReference/{d['id']}", ADMIN, content=json.dumps(WITHDRAW).encode(),
                       params={"reason": REASON}, headers=headers)
    assert r.status_code == 415 and finding_codes(r.json()) == {"patch-json-patch-type"}, r.text
    assert "application/json-patch+json" in r.json()["issue"][0]["diagnostics"]
    assert_unchanged(server, p, d)
