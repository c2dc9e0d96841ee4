"""Hostile documents for tests and bench/hostile.py: each built from a valid Shared Note, so that what makes it
hostile is the one thing added."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.builders import shared_note
from tests.xml_writer import to_xml

BUNDLE_OPEN = '<Bundle xmlns="http://hl7.org/fhir">'


def _note_xml() -> str:
    xml = to_xml(shared_note())
    assert BUNDLE_OPEN in xml
    return xml


def attribute_bomb(attributes: int) -> bytes:
    """The Shared Note in XML with `attributes` attributes on its root (issue 9: 100,000 of them, 1 MB)."""
    names = " ".join(f'a{i}="x"' for i in range(attributes))
    return _note_xml().replace(BUNDLE_OPEN, f'<Bundle xmlns="http://hl7.org/fhir" {names}>', 1).encode()


def element_flood(elements: int, element: str = "<x/>") -> bytes:
    """The Shared Note in XML with `elements` extra children of its root, unknown to FHIR by default."""
    return _note_xml().replace(BUNDLE_OPEN, BUNDLE_OPEN + element * elements, 1).encode()


def deep_xml(levels: int) -> bytes:
    return _note_xml().replace(BUNDLE_OPEN, BUNDLE_OPEN + "<x>" * levels + "</x>" * levels, 1).encode()


def key_flood(keys: int) -> bytes:
    """The Shared Note in JSON with `keys` extra members on its root, none of them FHIR's."""
    doc: dict[str, Any] = shared_note()
    doc.update({f"k{i}": 1 for i in range(keys)})
    return json.dumps(doc).encode()


def huge_note(paragraphs: int) -> bytes:
    """The Shared Note in JSON whose journal note (base64 XHTML) has `paragraphs` paragraphs."""
    doc: dict[str, Any] = shared_note()
    html = "<div xmlns='http://www.w3.org/1999/xhtml'>" + "<p>Smerter stabile.</p>" * paragraphs + "</div>"
    doc["entry"][1]["resource"]["extension"][0]["valueAttachment"]["data"] = base64.b64encode(html.encode()).decode()
    return json.dumps(doc).encode()


def narrative_attribute_bomb(attributes: int) -> bytes:
    """The Shared Note in JSON whose Composition narrative has one <p> with `attributes` attributes."""
    doc: dict[str, Any] = shared_note()
    names = " ".join(f"a{i}='x'" for i in range(attributes))
    doc["entry"][0]["resource"]["text"] = {"status": "generated",
                                           "div": f"<div xmlns='http://www.w3.org/1999/xhtml'><p {names}>x</p></div>"}
    return json.dumps(doc).encode()
