"""FHIR XML: read into the same shape as FHIR JSON, validated the same, located by line:column, checked for
namespace and element order, and read safely (no entities, no DTDs, nothing fetched).

The XML is made here, in the test, from the JSON documents by tests/xml_writer.py, which follows the R4
specification's element order on its own; MedCom's examples are read from ../shared, never copied.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from kroniker.cli import main
from kroniker.validators import Limits, Report, Severity, xsd
from kroniker.validators.base import resource_types
from kroniker.validators.packages import PackageCache
from kroniker.validators.source import Parsed, Unreadable, parse
from kroniker.validators.validate import Validator
from tests.builders import CPR, clone, diagnosis_card, shared_note
from tests.conftest import ROOT, SHARED
from tests.medcom_examples import shared_document_files
from tests.xml_writer import ORDER, to_xml

EXAMPLES = SHARED / "medcom-examples"
FHIR = "http://hl7.org/fhir"
PASSWD = "file:///etc/passwd"


# -- helpers -------------------------------------------------------------------------------------------------

def _shared_files() -> list[Path]:
    return shared_document_files(EXAMPLES) if EXAMPLES.exists() else []


def read(text: str | bytes) -> Parsed:
    return parse(text, Limits())


def refused(text: str | bytes, limits: Limits | None = None) -> Any:
    with pytest.raises(Unreadable) as exc:
        parse(text, limits or Limits())
    return exc.value.finding


def at(text: str, marker: str, nth: int = 0) -> tuple[int, int]:
    """1-based line:column of the nth occurrence of a marker in a text."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(marker, offset + 1)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def canonical_divs(node: Any) -> Any:
    """The same data with every narrative div as canonical XML: `<a/>` and `<a></a>` are one div."""
    if isinstance(node, dict):
        return {k: (etree.tostring(etree.fromstring(v), method="c14n").decode() if k == "div" and isinstance(v, str)
                    else canonical_divs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [canonical_divs(v) for v in node]
    return node


def findings(report: Report) -> list[tuple[str, str, str, str, str]]:
    return sorted((f.severity.label, f.code, f.second or "", f.location, f.message("en")) for f in report.findings)


def minified(xml: str) -> str:
    return "".join(line.strip() for line in xml.splitlines())


def with_patient_extras(doc: dict[str, Any]) -> dict[str, Any]:
    """Booleans, numbers, a primitive's extension beside a null, and a contained resource: the shapes
    where FHIR's XML and JSON forms differ most."""
    doc = clone(doc)
    patient = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["active"] = True
    patient["name"][0]["_given"] = [None, {"id": "g2", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"}]}]
    patient["extension"] = [{"url": "urn:kroniker:test:weight", "valueDecimal": 71.25},
                            {"url": "urn:kroniker:test:children", "valueInteger": 2},
                            {"url": "urn:kroniker:test:flag", "valueBoolean": False}]
    patient["contained"] = [{"resourceType": "Practitioner", "id": "c1", "name": [{"family": "Andersen"}]}]
    return doc


def without_title(doc: dict[str, Any]) -> dict[str, Any]:
    doc = clone(doc)
    del doc["entry"][0]["resource"]["title"]
    return doc


def short_title(doc: dict[str, Any]) -> dict[str, Any]:
    doc = clone(doc)
    doc["entry"][0]["resource"]["title"] = "Journalnotat"
    return doc


def bad_cpr(doc: dict[str, Any]) -> dict[str, Any]:
    doc = clone(doc)
    patient = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["identifier"] = [{"system": CPR, "value": "3213629996"}]
    return doc


DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "shared-note": shared_note,
    "diagnosis-card": diagnosis_card,
    "note-with-extras": lambda: with_patient_extras(shared_note()),
    "note-without-title": lambda: without_title(shared_note()),
    "note-short-title": lambda: short_title(shared_note()),
    "card-with-bad-cpr": lambda: bad_cpr(diagnosis_card()),
    "card-with-extras": lambda: with_patient_extras(diagnosis_card()),
}


# -- the JSON shape ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_our_documents_read_into_their_json_form(name: str) -> None:
    doc = DOCUMENTS[name]()
    parsed = read(to_xml(doc))
    assert parsed.format == "xml"
    assert canonical_divs(parsed.data) == canonical_divs(doc)
    assert parsed.findings == []


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: p.name[:60])
def test_medcom_examples_read_into_their_json_form(path: Path) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    parsed = read(to_xml(doc))
    assert canonical_divs(parsed.data) == canonical_divs(doc)
    assert parsed.findings == []


def test_primitives_take_their_json_types() -> None:
    xml = f"""<Patient xmlns="{FHIR}">
      <extension url="urn:x:dec"><valueDecimal value="0.10"/></extension>
      <extension url="urn:x:int"><valueInteger value="-7"/></extension>
      <extension url="urn:x:pos"><valuePositiveInt value="3"/></extension>
      <extension url="urn:x:str"><valueString value="007"/></extension>
      <active value="false"/>
      <birthDate value="1962-05-15"/>
    </Patient>"""
    data = read(xml).data
    values = [next(v for k, v in e.items() if k.startswith("value")) for e in data["extension"]]
    # decimal as json.loads reads the JSON number 0.10; integers as ints; a string of digits stays a string
    assert values == [json.loads("0.10"), -7, 3, "007"]
    assert data["active"] is False
    assert data["birthDate"] == "1962-05-15"


def test_repeating_elements_are_arrays_and_single_ones_are_not() -> None:
    # Patient.name and HumanName.given repeat (0..*), Patient.gender and HumanName.family do not (0..1):
    # one occurrence of each is still an array or not by that.
    data = read(f'<Patient xmlns="{FHIR}"><name><family value="Holm"/><given value="Jens"/></name>'
                '<gender value="male"/></Patient>').data
    assert data == {"resourceType": "Patient", "name": [{"family": "Holm", "given": ["Jens"]}], "gender": "male"}


def test_id_attributes_and_primitive_extensions_go_to_underscore_elements() -> None:
    data = read(f"""<Patient xmlns="{FHIR}"><id value="p1"/>
      <name id="n1"><given value="Bente"/><given id="g2"><extension url="urn:x:q"><valueCode value="CL"/></extension>
      </given></name><birthDate id="b1" value="1962-05-15"/></Patient>""").data
    assert data["id"] == "p1"  # a resource's id is an element, not an attribute
    assert data["name"] == [{"id": "n1", "given": ["Bente", None],
                             "_given": [None, {"id": "g2", "extension": [{"url": "urn:x:q", "valueCode": "CL"}]}]}]
    assert data["birthDate"] == "1962-05-15"
    assert data["_birthDate"] == {"id": "b1"}


def test_narrative_div_is_its_xhtml_text_without_the_documents_namespaces() -> None:
    data = read(f"""<Patient xmlns="{FHIR}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Bente &amp; Jens</p></div>
      </text></Patient>""").data
    assert data["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>Bente &amp; Jens</p></div>'


def test_a_prefixed_narrative_div_gets_xhtml_as_its_default_namespace() -> None:
    data = read(f"""<Patient xmlns="{FHIR}" xmlns:h="http://www.w3.org/1999/xhtml"><text><status value="generated"/>
      <h:div><h:p class="x">Bente <h:b>Holm</h:b></h:p></h:div></text></Patient>""").data
    assert data["text"]["div"] == \
        '<div xmlns="http://www.w3.org/1999/xhtml"><p class="x">Bente <b>Holm</b></p></div>'


# -- the same findings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_our_documents_validate_the_same_as_xml(name: str, validator: Validator) -> None:
    doc = DOCUMENTS[name]()
    as_json = validator.validate(json.dumps(doc, ensure_ascii=False, indent=2))
    as_xml = validator.validate(to_xml(doc))
    assert findings(as_xml) == findings(as_json)
    assert as_xml.valid == as_json.valid
    assert as_xml.standard == as_json.standard


def test_the_variants_do_find_something(validator: Validator) -> None:
    # The comparison above proves little on documents with nothing to find: these must have errors.
    for name in ("note-without-title", "note-short-title", "card-with-bad-cpr"):
        report = validator.validate(to_xml(DOCUMENTS[name]()))
        assert not report.valid, name


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: p.name[:60])
def test_medcom_examples_validate_the_same_as_xml(path: Path, validator: Validator) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert findings(validator.validate(to_xml(doc))) == findings(validator.validate(path))


# -- line:column ---------------------------------------------------------------------------------------------

def test_a_finding_points_at_its_element(validator: Validator) -> None:
    xml = to_xml(short_title(shared_note()))
    report = validator.validate(xml)
    title = [f for f in report if f.code == "COMP-TITLE"]
    assert title, findings(report)
    assert {(f.line, f.column) for f in title} == {at(xml, '<title value="Journalnotat"/>')}


def test_a_finding_in_a_list_points_at_its_item(validator: Validator) -> None:
    xml = to_xml(bad_cpr(diagnosis_card()))
    report = validator.validate(xml)
    cpr = [f for f in report if f.code == "invariant:cpr"]
    assert cpr, findings(report)
    assert [f.location for f in cpr] == ["Bundle.entry[1].resource.identifier[0].value"]
    # nowhere else in the document says 3213629996
    assert (cpr[0].line, cpr[0].column) == at(xml, '<value value="3213629996"/>')


def test_columns_tell_elements_apart_on_one_line(validator: Validator) -> None:
    xml = minified(to_xml(short_title(shared_note())))
    assert xml.count("\n") == 0
    report = validator.validate(xml)
    title = [f for f in report if f.code == "COMP-TITLE"]
    assert {(f.line, f.column) for f in title} == {at(xml, '<title value="Journalnotat"/>')}


def test_every_located_json_finding_is_located_in_xml(validator: Validator) -> None:
    doc = bad_cpr(without_title(shared_note()))
    located_json = {(f.code, f.location) for f in validator.validate(json.dumps(doc, indent=1)) if f.line}
    xml = validator.validate(to_xml(doc))
    located_xml = {(f.code, f.location) for f in xml if f.line}
    assert located_json and located_json <= located_xml


def test_a_missing_element_is_located_at_its_parent() -> None:
    xml = to_xml(shared_note())
    parsed = read(xml)
    # Composition has no encounter: it is located where the Composition (the resource of entry 0) starts
    composition = at(xml, "<Composition>")
    assert parsed.locate(("entry", 0, "resource", "encounter")) == composition
    assert parsed.locate(("entry", 0, "resource", "resourceType")) == composition
    assert parsed.locate(("entry", 0, "resource")) == at(xml, "<resource>")


def test_a_start_tag_over_several_lines_is_located_at_its_start() -> None:
    xml = f'<Patient xmlns="{FHIR}">\n  <gender\n    value="male"\n  />\n</Patient>'
    assert read(xml).locate(("gender",)) == (2, 3)


# -- element order, unknown elements, namespaces ------------------------------------------------------------

def _composition_reordered() -> str:
    """Shared Note with the Composition's <status> moved before its <identifier> (R4: identifier, status)."""
    xml = to_xml(shared_note())
    status = '        <status value="final"/>\n'
    identifier_start = xml.index("        <identifier>", xml.index("<Composition>"))
    assert xml.count(status) == 2  # the Composition's and the Observation's
    composition_status = xml.index(status, identifier_start)
    xml = xml[:composition_status] + xml[composition_status + len(status):]
    return xml[:identifier_start] + status + xml[identifier_start:]


def test_generated_schema_has_the_specifications_element_order() -> None:
    # Every type the writer knows, in the schema for the resource types of our documents and MedCom's.
    resources = {t for t in ORDER if "." not in t and t in resource_types()}
    schema = etree.fromstring(xsd.schema_text(resources).encode())
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    for type_path, order in ORDER.items():
        if type_path == "Element":
            continue  # no element is of type Element itself
        (complex_type,) = schema.findall(f"xs:complexType[@name='{type_path}']", ns)
        names = []
        for particle in complex_type.find("xs:sequence", ns):
            if particle.tag.endswith("}choice"):
                first = particle[0].get("name")
                names.append(next(n for n in order if n.endswith("[x]") and first.startswith(n[:-3])))
            else:
                names.append(particle.get("name") or "div")  # the narrative's div is xs:any in XHTML
        assert names == order, type_path
        attributes = [a.get("name") for a in complex_type.findall("xs:attribute", ns)]
        expected = [] if type_path in resources else ["id", "url"] if type_path == "Extension" else ["id"]
        assert attributes == expected, type_path


def test_element_order_is_checked() -> None:
    xml = _composition_reordered()
    found = [f for f in read(xml).findings if f.code == "xml-structure"]
    assert len(found) == 1, found
    f = found[0]
    assert f.severity == Severity.ERROR
    assert f.location == "Bundle.entry[0].resource.identifier"
    assert (f.line, f.column) == at(xml, "<identifier>", 1)  # the Bundle's identifier is the first
    assert "<identifier>" in f.message("en") and "<status>" in f.message("en")
    assert "rækkefølge" in f.message("da")


def test_element_order_reaches_the_report(validator: Validator) -> None:
    """What reading the XML found (Parsed.findings) is part of the report, beside the engine's findings."""
    as_xml = validator.validate(_composition_reordered())
    as_json = validator.validate(json.dumps(shared_note()))
    extra = set(findings(as_xml)) - set(findings(as_json))
    assert [(sev, code, loc) for sev, code, _, loc, _ in extra] == [
        ("error", "xml-structure", "Bundle.entry[0].resource.identifier")]
    assert not as_xml.valid


def test_unknown_element_is_reported_by_schema_and_engine(validator: Validator) -> None:
    xml = to_xml(shared_note()).replace('<language value="da"/>', '<language value="da"/><mood value="glad"/>', 1)
    parsed = read(xml)
    composition = parsed.data["entry"][0]["resource"]
    assert composition["mood"] == "glad"  # kept under its own name, as in JSON
    structure = [f for f in parsed.findings if f.code == "xml-structure"]
    assert [(f.location, f.message_key) for f in structure] == [("Bundle.entry[0].resource.mood", "xml-unknown")]
    report = validator.validate(xml)
    unknown = [f for f in report if f.code == "unknown-element"]
    assert [f.location for f in unknown] == ["Bundle.entry[0].resource.mood"]
    assert (unknown[0].line, unknown[0].column) == at(xml, "<mood ")


@pytest.mark.parametrize("root", ['<Bundle xmlns="http://hl7.org/fhir/">', "<Bundle>",
                                  '<f:Bundle xmlns:f="urn:not-fhir" xmlns="urn:not-fhir">'])
def test_wrong_namespace_is_reported(root: str) -> None:
    xml = to_xml(shared_note()).replace(f'<Bundle xmlns="{FHIR}">', root, 1)
    if root.startswith("<f:"):
        xml = xml.replace("</Bundle>", "</f:Bundle>")
    parsed = read(xml)
    assert [(f.code, f.severity, f.message_key) for f in parsed.findings] == [
        ("xml-structure", Severity.ERROR, "xml-namespace")]
    assert FHIR in parsed.findings[0].message("en")
    # the rest is still read, by local names
    assert parsed.data["entry"][0]["resource"]["resourceType"] == "Composition"


def test_an_element_in_another_namespace_is_reported() -> None:
    xml = to_xml(shared_note()).replace('<language value="da"/>',
                                        '<language value="da"/><x:title xmlns:x="urn:x" value="Snyd"/>', 1)
    parsed = read(xml)
    assert [(f.message_key, f.params["found"]) for f in parsed.findings] == [("xml-element-namespace", "urn:x")]
    assert parsed.data["entry"][0]["resource"]["title"] == "Journalnotat for 1505629996"  # not the other one


def test_attributes_text_and_repeats_have_no_place() -> None:
    xml = to_xml(shared_note())
    xml = xml.replace('<type value="document"/>', '<type value="document" kind="x"/>', 1)
    xml = xml.replace('<gender value="female"/>', '<gender value="female"/><gender value="male"/>', 1)
    xml = xml.replace('<birthDate value="1962-05-15"/>', "<birthDate>1962-05-15</birthDate>", 1)
    keys = {(f.message_key, f.location) for f in read(xml).findings}
    assert keys == {("xml-attribute", "Bundle.type"), ("xml-repeat", "Bundle.entry[2].resource.gender"),
                    ("xml-text", "Bundle.entry[2].resource.birthDate")}


MISPLACED = [
    # (what the document has, message key, location, what the JSON form reads)
    ('<extension><url value="urn:x"/><valueString value="v"/></extension>', "xml-attribute-as-element",
     "Patient.extension[0].url", {"extension": [{"url": "urn:x", "valueString": "v"}]}),
    ('<name><id value="n1"/><family value="Holm"/></name>', "xml-attribute-as-element", "Patient.name[0].id",
     {"name": [{"id": "n1", "family": "Holm"}]}),
    ('<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>', "xml-choice-repeat",
     "Patient.deceasedDateTime", {"deceasedBoolean": True, "deceasedDateTime": "2020"}),
    ('<text><status value="generated"/><div><p>Hej</p></div></text>', "xml-element-namespace", "Patient.text.div",
     {"text": {"status": "generated"}}),
    ('<contained/>', "xml-no-resource", "Patient.contained[0]", {"contained": [{}]}),
    ('<contained><Practitioner/><Organization/></contained>', "xml-repeat", "Patient.contained[0].Organization",
     {"contained": [{"resourceType": "Practitioner"}]}),
]


@pytest.mark.parametrize(("inner", "key", "location", "data"), MISPLACED, ids=[m[1] + "-" + m[2] for m in MISPLACED])
def test_misplaced_xml_is_said_in_fhir_terms(inner: str, key: str, location: str, data: dict[str, Any]) -> None:
    xml = f'<Patient xmlns="{FHIR}">{inner}</Patient>'
    parsed = read(xml)
    assert [(f.code, f.message_key, f.location) for f in parsed.findings] == [("xml-structure", key, location)]
    assert parsed.data == {"resourceType": "Patient", **data}
    message = parsed.findings[0].message("en")
    assert "?" not in message.split(": ", 1)[1], message  # every placeholder filled


def test_every_xml_message_has_danish_and_english_text() -> None:
    source = (ROOT / "validators" / "xmlreader.py").read_text(encoding="utf-8")
    keys = set(re.findall(r'"@?(xml-[a-z-]+)"', source)) | {"xml-structure", "xml-syntax"}
    for lang in ("da", "en"):
        catalogue = json.loads((ROOT / "validators" / "messages" / f"{lang}.json").read_text(encoding="utf-8"))
        assert keys <= set(catalogue), (lang, sorted(keys - set(catalogue)))
    assert len(keys) >= 20


def test_a_value_that_is_no_literal_of_its_type_is_said_in_xml_terms(validator: Validator) -> None:
    """Not "must be written as the right JSON type": the reader's finding comes first, the engine's repeat goes."""
    doc = with_patient_extras(shared_note())
    xml = to_xml(doc).replace('<active value="true"/>', '<active value="yes"/>', 1)
    report = validator.validate(xml)
    datatype = [f for f in report if f.code == "datatype" and f.location.endswith("active")]
    assert len(datatype) == 1, findings(report)
    assert datatype[0].message("en") == "Bundle.entry[2].resource.active: yes is not a valid boolean"
    assert (datatype[0].line, datatype[0].column) == at(xml, '<active value="yes"/>')


def test_an_empty_primitive_is_reported() -> None:
    xml = to_xml(shared_note()).replace('<gender value="female"/>', "<gender/>", 1)
    parsed = read(xml)
    assert [(f.message_key, f.location) for f in parsed.findings] == [("xml-empty", "Bundle.entry[2].resource.gender")]
    assert "gender" not in parsed.data["entry"][2]["resource"]


# -- reading safely ------------------------------------------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that counts who connects: nothing may, whatever the document asks for."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


HANG = 300.0  # seconds: not a latency bound (that is bench/hostile.py's), only so a hang fails instead of stalling CI


def finishes(fn: Callable[[], Any]) -> Any:
    """fn() in a thread, failing (not hanging the run) if it never returns, e.g. waiting on a network fetch."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), f"still running after {HANG} s: it hangs"
    assert result, "raised instead of returning a report"
    return result[0]


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Patient [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>
"""


def hostile(port: int) -> dict[str, str]:
    here = f"http://127.0.0.1:{port}"
    return {
        "billion-laughs": BILLION_LAUGHS,
        "xxe-file": f'<?xml version="1.0"?>\n<!DOCTYPE Patient [<!ENTITY x SYSTEM "{PASSWD}">]>\n'
                    f'<Patient xmlns="{FHIR}"><name><family value="&x;"/></name></Patient>',
        "doctype-system-file": f'<!DOCTYPE Patient SYSTEM "{PASSWD}">\n<Patient xmlns="{FHIR}"/>',
        "external-dtd": f'<?xml version="1.0"?>\n<!-- a comment first -->\n<!DOCTYPE Patient SYSTEM "{here}/fhir.dtd">'
                        f'\n<Patient xmlns="{FHIR}"><active value="true"/></Patient>',
        "xxe-network": f'\ufeff<!DOCTYPE Patient [<!ENTITY % remote SYSTEM "{here}/evil.dtd"> %remote;]>'
                       f'<Patient xmlns="{FHIR}"/>',
    }


@pytest.mark.parametrize("case", ["billion-laughs", "xxe-file", "doctype-system-file", "external-dtd", "xxe-network"])
def test_doctypes_are_refused_unread(case: str, listener: socket.socket, validator: Validator) -> None:
    text = hostile(listener.getsockname()[1])[case]
    report = finishes(lambda: validator.validate(text))
    assert [(f.severity, f.code, f.message_key) for f in report.findings] == [
        (Severity.FATAL, "xml-syntax", "xml-doctype")]
    assert (report.findings[0].line, report.findings[0].column) == at(text.lstrip("\ufeff"), "<!DOCTYPE")
    assert "DTD" in report.findings[0].message("en") and "DTD" in report.findings[0].message("da")
    assert "root:" not in report.findings[0].message("en")
    assert connections(listener) == 0


def test_schema_location_hints_are_not_followed(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    xml = (f'<Patient xmlns="{FHIR}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           f'xsi:schemaLocation="{FHIR} http://127.0.0.1:{port}/fhir-all.xsd"><active value="true"/></Patient>')
    parsed = finishes(lambda: read(xml))
    assert parsed.data == {"resourceType": "Patient", "active": True}
    assert parsed.findings == []
    assert connections(listener) == 0


def test_an_undeclared_entity_is_a_syntax_error() -> None:
    f = refused(f'<Patient xmlns="{FHIR}"><name><family value="&x;"/></name></Patient>')
    assert (f.severity, f.code) == (Severity.FATAL, "xml-syntax")
    assert f.line == 1


def test_a_huge_attribute_is_refused() -> None:
    # Over libxml2's 10 000 000-character limit for one value, under kroniker's 10 MiB for a document.
    value = "a" * 10_000_001
    xml = f'<Patient xmlns="{FHIR}"><name><family value="{value}"/></name></Patient>'
    assert len(xml.encode()) <= Limits().max_bytes
    f = refused(xml)
    assert (f.severity, f.code) == (Severity.FATAL, "xml-syntax")
    assert "10,000,000" in f.message("en")


def test_malformed_xml_is_located() -> None:
    xml = f'<Patient xmlns="{FHIR}">\n  <name>\n    <family value="Holm">\n  </name>\n</Patient>'
    f = refused(xml)
    assert (f.severity, f.code, f.line) == (Severity.FATAL, "xml-syntax", 4)  # where </name> meets <family>
    assert f.column is not None and f.column > 1
    assert "sluttag" in f.message("da") and "end tag" in f.message("en")


def test_invalid_utf8_is_an_encoding_finding() -> None:
    raw = f'<Patient xmlns="{FHIR}">\n<name><family value="'.encode() + b"S\xf8rensen" + b'"/></name></Patient>'
    f = refused(raw)
    assert (f.severity, f.code, f.line) == (Severity.FATAL, "encoding", 2)


def test_a_declared_encoding_other_than_utf8_is_refused() -> None:
    f = refused(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<Patient xmlns="http://hl7.org/fhir"/>')
    assert (f.code, f.message_key) == ("encoding", "xml-encoding")
    assert "ISO-8859-1" in f.message("en")


def test_deep_nesting_is_refused() -> None:
    depth = 200
    xml = f'<Patient xmlns="{FHIR}">' + '<extension url="u">' * depth + "</extension>" * depth + "</Patient>"
    f = refused(xml, Limits(max_depth=64))
    assert f.code == "too-deep"


def test_nothing_raises_on_hostile_input(validator: Validator) -> None:
    for text in ("<", "<Patient", f'<Patient xmlns="{FHIR}"><name>', "<?xml version='1.0'?>", "<!-- only -->",
                 f'<Patient xmlns="{FHIR}"><![CDATA[<name/>]]></Patient>', f'<Foo xmlns="{FHIR}"/>',
                 f'<Bundle xmlns="{FHIR}"><entry><resource/></entry><entry><resource><Nope/></resource></entry>'
                 "</Bundle>"):
        report = validator.validate(text)
        assert report.findings, text
        assert all(f.message("en") for f in report.findings)


_NOTE_XML = to_xml(shared_note())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(_NOTE_XML)), length=st.integers(0, 40),
       insert=st.sampled_from(["", "<", ">", "/>", "</x>", '"', "&", "&amp;", "<extension>", '<id value="x"/>',
                               '<Patient xmlns="urn:x">', "<![CDATA[<a>]]>", "<!-- -->", "<?pi?>", "\x00", "æ"]))
def test_damaged_xml_never_crashes(validator: Validator, cut: int, length: int, insert: str) -> None:
    text = _NOTE_XML[:cut] + insert + _NOTE_XML[cut + length:]
    report = validator.validate(text)
    lines = text.count("\n") + 1
    for f in report:
        assert f.message("en") and f.message("da")
        assert f.line is None or (1 <= f.line <= lines and f.column is not None and f.column >= 1), f
    assert report.valid is not any(f.severity >= Severity.ERROR for f in report.findings)


# -- the command line ----------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, package_cache: PackageCache) -> None:
    for name in ("KRONIKER_LANG", "KRONIKER_MAX_BYTES", "KRONIKER_MAX_DEPTH", "FHIR_PACKAGE_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRONIKER_FHIR_PACKAGES", str(package_cache.root))


def test_cli_validates_an_xml_file(cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "arskontrol.xml"
    good.write_text(to_xml(shared_note()), encoding="utf-8")
    assert main(["validate", str(good)]) == 0
    capsys.readouterr()
    bad = tmp_path / "kort-titel.xml"
    xml = to_xml(short_title(shared_note()))
    bad.write_text(xml, encoding="utf-8")
    assert main(["validate", "--format", "json", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    issues = [i for i in json.loads(out)["issue"] if i["details"]["coding"][0]["code"] == "COMP-TITLE"]
    line, column = at(xml, '<title value="Journalnotat"/>')
    assert [i["location"] for i in issues] == [[f"{line}:{column}"]]
    assert [i["expression"] for i in issues] == [["Bundle.entry[0].resource.title"]]


# -- bounded work (issue 9: 100,000 attributes on the root kept a server worker busy for 18 minutes) ----------

class _SchemaSpy:
    """Counts what xmlschema is given and the errors it makes: work is asserted by count, never by time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, validator: Validator) -> None:
        import xmlschema
        from xmlschema.validators.validation import ValidationContext

        validator.validate(to_xml(shared_note()))  # the note's schema compiled (and itself validated) before counting

        self.documents: list[int] = []  # attributes on the root of each document the schema checked
        self.errors = 0
        iter_errors = xmlschema.XMLSchema10.iter_errors
        validation_error = ValidationContext.validation_error
        children_error = ValidationContext.children_validation_error

        def spy_iter_errors(schema: Any, source: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            self.documents.append(len(source.attrib))
            return iter_errors(schema, source, *args, **kwargs)

        def spy_error(original: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.errors += 1
                return original(*args, **kwargs)
            return counted

        monkeypatch.setattr(xmlschema.XMLSchema10, "iter_errors", spy_iter_errors)
        monkeypatch.setattr(ValidationContext, "validation_error", spy_error(validation_error))
        monkeypatch.setattr(ValidationContext, "children_validation_error", spy_error(children_error))


@pytest.mark.parametrize("attributes", [3_000, 100_000])
def test_an_attribute_bomb_is_refused_before_the_schema_sees_it(attributes: int, validator: Validator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.hostile_documents import attribute_bomb

    spy = _SchemaSpy(monkeypatch, validator)
    report = validator.validate(attribute_bomb(attributes))
    assert [(f.severity, f.code, f.message_key) for f in report.findings] == [
        (Severity.FATAL, "too-large", "xml-too-many-attributes")]
    # the root's attributes and its one namespace declaration (xmlns), against the documented default of 32
    assert report.findings[0].params == {"element": "Bundle", "count": attributes + 1, "limit": 32}
    assert "KRONIKER_MAX_XML_ATTRIBUTES" in report.findings[0].message("da")
    assert spy.documents == [] and spy.errors == 0


def test_attributes_under_the_limit_are_one_finding_and_no_schema_errors(validator: Validator,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.hostile_documents import attribute_bomb

    spy = _SchemaSpy(monkeypatch, validator)
    report = validator.validate(attribute_bomb(31))  # + xmlns: 32, the limit
    structure = [f for f in report.findings if f.code == "xml-structure"]
    assert [(f.location, f.message_key, f.params["name"]) for f in structure] == [("Bundle", "xml-attribute", "a0")]
    assert spy.documents == [31]  # checked, with its attributes (lxml keeps xmlns apart) …
    assert spy.errors == 0  # … but none of the 31 became an xmlschema error (each copied all 32: quadratic)


def test_too_many_elements_are_refused_before_the_schema_sees_them(validator: Validator,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.hostile_documents import element_flood

    spy = _SchemaSpy(monkeypatch, validator)
    report = validator.validate(element_flood(100_000))
    assert [(f.code, f.message_key, f.params) for f in report.findings] == [
        ("too-large", "too-many-elements", {"limit": 50_000})]
    assert spy.documents == []


def test_the_element_limit_is_a_setting(package_cache: PackageCache) -> None:
    from tests.hostile_documents import element_flood

    doc = element_flood(100)
    elements = sum(1 for _ in etree.fromstring(doc).iter())
    assert Validator(package_cache, Limits(max_elements=elements)).validate(doc).findings[0].code != "too-large"
    over = Validator(package_cache, Limits(max_elements=elements - 1)).validate(doc).findings
    assert [f.message_key for f in over] == ["too-many-elements"]


def test_many_children_with_no_place_cost_a_bounded_number_of_schema_errors(validator: Validator,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.hostile_documents import element_flood

    spy = _SchemaSpy(monkeypatch, validator)
    report = validator.validate(element_flood(20_000))
    structure = [f for f in report.findings if f.code == "xml-structure"]
    summary = [f for f in structure if f.message_key == "xml-children-unchecked"]
    assert len(summary) == 1 and summary[0].params == {"element": "Bundle", "count": 20_000, "shown": 49}
    assert len(structure) == 50  # the summary and 49 of the 20,000: one code's share of the report
    assert len(report.findings) <= 2 * (50 + 1) + 5  # listed per code, one summary each, and the rest of the note
    assert spy.errors <= 50  # xmlschema never walked the 20,000 (each of its errors counts all the siblings)


def test_a_report_lists_a_bounded_number_of_findings_per_code(package_cache: PackageCache) -> None:
    from tests.hostile_documents import key_flood

    report = Validator(package_cache, Limits(max_findings=10_000)).validate(key_flood(3_000))
    unknown = [f for f in report.findings if f.code == "unknown-element"]
    listed = [f for f in unknown if f.message_key != "findings-omitted"]
    summary = [f for f in unknown if f.message_key == "findings-omitted"]
    assert len(listed) == 50
    assert [(s.severity, s.params["count"]) for s in summary] == [(listed[0].severity, 3_000 - 50)]
    assert not report.valid


def test_a_walk_over_its_finding_budget_ends_with_a_finding(package_cache: PackageCache) -> None:
    from tests.hostile_documents import key_flood

    report = Validator(package_cache, Limits(max_findings=100)).validate(key_flood(3_000))
    stopped = [f for f in report.findings if f.message_key == "too-many-findings"]
    assert [(f.severity, f.code, f.params) for f in stopped] == [(Severity.ERROR, "too-large", {"limit": 100})]
    omitted = sum(f.params["count"] for f in report.findings if f.message_key == "findings-omitted")
    assert len(report.findings) - 1 + omitted <= 100 + 1 + 10  # the walk's 100 and the document rules' few


def test_a_json_document_with_too_many_values_is_refused(validator: Validator) -> None:
    from tests.hostile_documents import key_flood

    report = validator.validate(key_flood(100_000))
    assert [(f.severity, f.code, f.message_key) for f in report.findings] == [
        (Severity.FATAL, "too-large", "too-many-elements")]


def test_a_narrative_element_with_too_many_attributes_is_not_let_through(validator: Validator) -> None:
    from tests.hostile_documents import narrative_attribute_bomb

    report = validator.validate(narrative_attribute_bomb(100_000))
    assert "invariant:txt-1" in report.rules()
