"""XML on the routes outside the FHIR base (issue 14, item 3: "every route answers JSON and XML alike").

/health, /blocks and /admin/* take and give plain JSON, which FHIR's XML has no form for; asked for XML they
answer W3C's JSON-in-XML (XPath and XQuery Functions 3.1 §17.5, https://www.w3.org/TR/xpath-functions-31/
#json-to-xml-mapping) and take it as a body. The expected XML is read here by `w3c_value`, written from §17.5's
rules (not from reference_server/json_xml.py), and compared with the same call's JSON answer; the reader is
checked against §17.5's own example. Refusals on these routes are OperationOutcomes, in FHIR's XML when XML is
asked for. Every such route in the route table must have a case here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from kroniker.reference_server import json_xml
from kroniker.reference_server.app import ROUTES
from kroniker.reference_server.formats import is_fhir_path
from kroniker.reference_server.inputs import BadInput
from tests.proxy_support import aged
from tests.server_support import ADMIN, Server, citizen, new_patient

FN = "http://www.w3.org/2005/xpath-functions"
FHIR_NS = "http://hl7.org/fhir"
SAFE = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False, huge_tree=False)
XML = {"Accept": "application/xml"}
XML_BODY = {"Content-Type": "application/xml", "Accept": "application/xml"}
PLAIN_ROUTES = {(r.method, r.path) for r in ROUTES if not r.page and not is_fhir_path(r.path)}


def w3c_value(el: etree._Element) -> Any:
    """§17.5.2's mapping read off an element: map → object (members keyed by @key), array → list, string,
    number (xs:double), boolean (xs:boolean), null. Escaped text is JSON's escapes (§17.5.2 "escaped")."""
    assert isinstance(el.tag, str) and etree.QName(el).namespace == FN, el.tag
    name = etree.QName(el).localname
    if name == "map":
        keys = [unescape(c.get("key"), c.get("escaped-key")) for c in el]
        assert None not in keys and len(set(keys)) == len(keys), keys
        return {k: w3c_value(c) for k, c in zip(keys, el, strict=True)}
    if name == "array":
        assert all(c.get("key") is None for c in el)
        return [w3c_value(c) for c in el]
    text = el.text or ""
    if name == "string":
        return unescape(text, el.get("escaped"))
    if name == "number":  # an integer stays one (JSON's 2 and 2.0 differ in Python, not in xs:double)
        return int(text) if text.strip().lstrip("-").isdigit() else float(text)
    if name == "boolean":
        return text.strip() in ("true", "1")
    assert name == "null" and not text.strip(), name
    return None


def unescape(text: str | None, escaped: str | None) -> str | None:
    if text is None or escaped not in ("true", "1"):
        return text
    # JSON's escapes are exactly what a JSON string literal holds; a literal '"' is escaped for json.loads.
    return json.loads('"' + text.replace('"', '\\"') + '"')


def xml_answer(r: httpx.Response) -> Any:
    assert r.headers["content-type"].startswith("application/xml"), (r.status_code, r.headers, r.text)
    root = etree.fromstring(r.content, SAFE)
    assert root.getroottree().docinfo.xml_version == "1.0"
    return w3c_value(root)


def outcome_codes(r: httpx.Response) -> set[str]:
    """The finding codes of an OperationOutcome answered in FHIR's XML."""
    assert r.headers["content-type"].startswith("application/fhir+xml"), (r.status_code, r.text)
    root = etree.fromstring(r.content, SAFE)
    assert root.tag == f"{{{FHIR_NS}}}OperationOutcome"
    return {c.get("value") for c in root.iter(f"{{{FHIR_NS}}}code") if c.getparent() is not None
            and c.getparent().tag == f"{{{FHIR_NS}}}coding"}


def in_xml(value: Any, key: str | None = None) -> str:
    """A body written by hand in §17.5's form (strings here need no escaping)."""
    k = f' key="{key}"' if key is not None else ""
    if isinstance(value, dict):
        return f"<map{k}>" + "".join(in_xml(v, name) for name, v in value.items()) + "</map>"
    if value is None:
        return f"<null{k}/>"
    return f"<string{k}>{value}</string>"


def document(value: dict[str, Any]) -> bytes:
    return in_xml(value).replace("<map>", f'<map xmlns="{FN}">', 1).encode("utf-8")


# -- one case per route -----------------------------------------------------------------------------------

def same_answer(server: Server, method: str, path: str, who: Any, **kwargs: Any) -> Any:
    """The route asked twice, for JSON and for XML (by Accept, then by _format): the same status and content."""
    as_json = server.request(method, path, who, **kwargs)
    by_accept = server.request(method, path, who, headers=XML, **kwargs)
    params = {**kwargs.pop("params", {}), "_format": "xml"}
    by_format = server.request(method, path, who, params=params, **kwargs)
    assert as_json.headers["content-type"].startswith("application/json"), as_json.text
    for r in (by_accept, by_format):
        assert r.status_code == as_json.status_code, r.text
        assert xml_answer(r) == as_json.json()
    return as_json.json()


def health_case(server: Server) -> None:
    assert same_answer(server, "GET", "/health", None)["status"] == "ok"


def blocks_case(server: Server) -> None:
    """A block made from an XML body is the one a JSON body makes; listed, then lifted, alike in both."""
    p = new_patient()
    body = {"kind": "organisation", "organisation": "123456789012345", "patient": p.cpr}
    by_json = server.request("POST", "/blocks", citizen(p), json=body)
    by_xml = server.request("POST", "/blocks", citizen(p), content=document(body), headers=XML_BODY)
    assert by_json.status_code == by_xml.status_code == 201, by_xml.text
    made = xml_answer(by_xml)
    assert made["id"] != by_json.json()["id"]
    assert {**made, "id": None} == {**by_json.json(), "id": None} == {"id": None, "patient": p.cpr,
                                                                      "kind": "organisation"}
    listed = same_answer(server, "GET", "/blocks", citizen(p), params={"patient": p.cpr})
    assert [(b["kind"], b["org_sor"]) for b in listed] == [("organisation", "123456789012345")] * 2
    lifted = server.request("DELETE", f"/blocks/{made['id']}", citizen(p), headers=XML)
    assert lifted.status_code == 200 and xml_answer(lifted) == {"id": made["id"], "lifted": True}
    again = server.request("DELETE", f"/blocks/{made['id']}", citizen(p))  # the JSON answer of the same
    assert again.json() == {"id": made["id"], "lifted": False}


def relations_case(server: Server) -> None:
    p = new_patient()
    body = {"patient": p.cpr, "organisation": "123456789012345", "evidence": "referral"}
    r = server.request("POST", "/admin/relations", ADMIN, content=document(body), headers=XML_BODY)
    assert r.status_code == 201, r.text
    made = xml_answer(r)
    assert set(made) == {"id"} and made["id"]


def proxies_case(server: Server) -> None:
    mother, child = aged(40), aged(8)
    body = {"kind": "custody", "holder": mother.cpr, "subject": child.cpr}
    r = server.request("POST", "/admin/proxies", ADMIN, content=document(body), headers=XML_BODY)
    assert r.status_code == 201, r.text
    made = xml_answer(r)
    assert (made["kind"], made["holder"], made["subject"]) == ("custody", mother.cpr, child.cpr)
    listed = same_answer(server, "GET", "/admin/proxies", ADMIN, params={"holder": mother.cpr})
    assert [p["id"] for p in listed] == [made["id"]]
    ended = server.request("DELETE", f"/admin/proxies/{made['id']}", ADMIN, headers=XML)
    assert ended.status_code == 200 and xml_answer(ended) == {"id": made["id"], "ended": True}


CASES: dict[tuple[str, str], Callable[[Server], None]] = {
    ("GET", "/health"): health_case,
    ("POST", "/blocks"): blocks_case, ("GET", "/blocks"): blocks_case, ("DELETE", "/blocks/{id}"): blocks_case,
    ("POST", "/admin/relations"): relations_case,
    ("POST", "/admin/proxies"): proxies_case, ("GET", "/admin/proxies"): proxies_case,
    ("DELETE", "/admin/proxies/{id}"): proxies_case,
}


def test_the_plain_routes_are_the_ones_cased() -> None:
    assert PLAIN_ROUTES and ("GET", "/health") in PLAIN_ROUTES
    assert set(CASES) <= PLAIN_ROUTES, set(CASES) - PLAIN_ROUTES


@pytest.mark.parametrize("method,path", sorted(PLAIN_ROUTES))
def test_every_plain_route_answers_json_and_xml_alike(server: Server, method: str, path: str) -> None:
    assert (method, path) in CASES, f"{method} {path} has no XML case in tests/test_server_json_xml.py"
    CASES[(method, path)](server)


# -- refusals and bad bodies ----------------------------------------------------------------------------

def test_a_refusal_on_a_plain_route_is_an_operation_outcome_in_fhirs_xml(server: Server) -> None:
    p, other = new_patient(), new_patient()
    r = server.request("GET", "/blocks", citizen(p), params={"patient": other.cpr}, headers=XML)
    assert r.status_code == 403 and outcome_codes(r)
    assert server.request("GET", "/blocks", None, headers=XML).status_code == 401
    bad = server.request("POST", "/blocks", citizen(p), content=document({"kind": "nothing"}), headers=XML_BODY)
    assert bad.status_code == 400 and "block-kind" in outcome_codes(bad)


HOSTILE = {
    "doctype": (b'<?xml version="1.0"?><!DOCTYPE map [<!ENTITY x "organisation">]>'
                b'<map xmlns="' + FN.encode() + b'"><string key="kind">&x;</string></map>', "jx-doctype"),
    "not well-formed": (b'<map xmlns="' + FN.encode() + b'"><string key="kind">period</map>', "jx-syntax"),
    "no namespace": (b'<map><string key="kind">period</string></map>', "jx-element"),
    "FHIR's namespace": (b'<map xmlns="http://hl7.org/fhir"><string key="kind">period</string></map>',
                         "jx-element"),
    "a member without key": (b'<map xmlns="' + FN.encode() + b'"><string>period</string></map>', "jx-key"),
    "a key twice": (b'<map xmlns="' + FN.encode() + b'"><string key="kind">period</string>'
                    b'<string key="kind">professional</string></map>', "jx-key"),
    "text in a map": (b'<map xmlns="' + FN.encode() + b'">period<string key="kind">period</string></map>',
                      "jx-text"),
    "a bad number": (b'<map xmlns="' + FN.encode() + b'"><number key="n">INF</number></map>', "jx-value"),
    "a bad boolean": (b'<map xmlns="' + FN.encode() + b'"><boolean key="b">yes</boolean></map>', "jx-value"),
    "a bad escape": (b'<map xmlns="' + FN.encode() + b'"><string key="kind" escaped="true">a\\qb</string></map>',
                     "jx-escape"),
    "an unknown attribute": (b'<map xmlns="' + FN.encode() + b'"><string key="kind" lang="da">period</string>'
                             b'</map>', "jx-attribute"),
    "an array at the top": (b'<array xmlns="' + FN.encode() + b'"><string>period</string></array>', "not-json"),
    "a control character": (b'<map xmlns="' + FN.encode() + b'"><string key="kind" escaped="true">\\u0001'
                            b'</string></map>', "bad-text"),
    "too deep": (b'<map xmlns="' + FN.encode() + b'">' + b'<map key="a">' * 200 + b'</map>' * 200 + b'</map>',
                 "too-deep"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_bad_xml_body_is_400_and_nothing_is_written(server: Server, name: str) -> None:
    body, finding = HOSTILE[name]
    p = new_patient()
    before = server.rows()
    r = server.request("POST", "/blocks", citizen(p), content=body, headers=XML_BODY)
    assert r.status_code == 400 and finding in outcome_codes(r), r.text
    after = server.rows()
    assert after["blocks"] == before["blocks"]
    assert server.request("GET", "/blocks", citizen(p)).json() == []


def test_an_accept_outside_fhir_is_disregarded_but_an_unknown_format_refused(server: Server) -> None:
    """RFC 9110 §12.5.1 lets a server disregard Accept; a monitor asking text/plain still gets /health."""
    r = server.get("/health", headers={"Accept": "text/plain"})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert server.get("/health", params={"_format": "yaml"}).status_code == 406
    browser = server.get("/health", headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9"})
    assert xml_answer(browser)["status"] == "ok"


# -- the mapping itself -----------------------------------------------------------------------------------

# §17.5's example (abridged: one city), and the JSON it stands for.
SPEC_EXAMPLE = f"""<map xmlns="{FN}">
  <string key='desc'>Distances between several cities, in kilometers.</string>
  <string key='updated'>2014-02-04T18:50:45</string>
  <boolean key="uptodate">true</boolean>
  <null key="author"/>
  <map key='cities'>
    <array key="Brussels">
      <map><string key="to">London</string><number key="distance">322</number></map>
      <map><string key="to">Paris</string><number key="distance">265</number></map>
    </array>
  </map>
</map>""".encode()
SPEC_JSON = {"desc": "Distances between several cities, in kilometers.", "updated": "2014-02-04T18:50:45",
             "uptodate": True, "author": None,
             "cities": {"Brussels": [{"to": "London", "distance": 322}, {"to": "Paris", "distance": 265}]}}


def test_the_specs_example_reads_as_its_json() -> None:
    assert json_xml.loads(SPEC_EXAMPLE, max_depth=10) == SPEC_JSON
    assert w3c_value(etree.fromstring(json_xml.dumps(SPEC_JSON), SAFE)) == SPEC_JSON


def test_xs_boolean_and_double_forms_are_read() -> None:
    xml = (f'<array xmlns="{FN}"><boolean> 1 </boolean><boolean>0</boolean><number>1e3</number>'
           '<number>-.5</number><number> 7 </number></array>').encode()
    assert json_xml.loads(xml, max_depth=5) == [True, False, 1000.0, -0.5, 7]


def test_a_doctype_is_refused_before_the_parser_sees_it() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            b'<string xmlns="' + FN.encode() + b'">&lol2;</string>')
    with pytest.raises(BadInput) as raised:
        json_xml.loads(bomb, max_depth=5)
    assert raised.value.key == "jx-doctype"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_every_json_value_has_an_xml_form_that_reads_back_as_itself(value: Any) -> None:
    """Any text, control characters and lone surrogates included (written escaped, as §17.5.2 allows)."""
    xml = json_xml.dumps(value)
    assert w3c_value(etree.fromstring(xml, SAFE)) == value
    assert json_xml.loads(xml, max_depth=50) == value

