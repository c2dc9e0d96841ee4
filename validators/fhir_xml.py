"""FHIR JSON → FHIR XML by FHIR's XML rules (http://hl7.org/fhir/R4/xml.html): the reverse of xmlreader.

Element order, which elements are primitives (a `value` attribute, their `_name` extras as the `id` attribute
and child extensions), which are resources (wrapped in an element of their type) and which are attributes
(`id` of an element, `Extension.url`) come from the R4 definitions kroniker has: `base.base_structure()`,
fhir.resources' models in FHIR's element order (`elements_sequence`) kept to R4 — the same data the generated
XSD (xsd.py) and the XML reader use, held to the specification's order by tests/test_xml.py's table transcribed
from http://hl7.org/fhir/R4. The narrative's `div` is written as XHTML in XHTML's namespace.

Whatever the definitions do not know (a resource type that is not in R4, an element with no place: kroniker
never serves such, but a document may hold them) is still written, after the known elements in the JSON's
order, so that nothing is lost on the way; the reader and the schema then report it as it is.
Characters XML 1.0 cannot hold (control characters, lone surrogates) are written as their JSON escape.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from kroniker.validators import base
from kroniker.validators.structure import Elem

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"

# Characters outside XML 1.0's Char production: no escape makes them XML, so they are written as JSON escapes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_DIV_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
# What can be an element's name: a JSON key that cannot (no FHIR element is named so) is left out.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# The XML attribute each element of these types has instead of a child element (besides Element.id).
_ATTRIBUTES = {"Extension": ("url",)}


def to_xml(resource: dict[str, Any]) -> str:
    """A FHIR JSON resource as FHIR XML text, one element per line (the narrative's div on one line)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    _resource(resource, lines, 0, f' xmlns="{FHIR_NS}"')
    return "\n".join(lines) + "\n"


def to_xml_bytes(resource: dict[str, Any]) -> bytes:
    return to_xml(resource).encode("utf-8")


def _text(value: str) -> str:
    return _NOT_XML.sub(lambda m: json.dumps(m.group(0))[1:-1], value)


def _attr(value: str) -> str:
    return quoteattr(_text(value))


# -- the definitions -------------------------------------------------------------------------------------------

@cache
def _type_children(code: str) -> dict[str, Elem] | None:
    """The children of a resource or datatype in FHIR's order (None: not known)."""
    struct = base.base_structure(code)
    return dict(struct.root.children) if struct is not None else None


def _backbone_children(elem: Elem) -> dict[str, Elem]:
    if elem.children:
        return elem.children
    if elem.content_ref and elem.owner is not None:  # e.g. Composition.section.section → Composition.section
        target = elem.owner.by_id.get(elem.content_ref.split("#", 1)[-1])
        if target is not None:
            return target.children
    return {}


def _choice_code(elem: Elem, key: str) -> str | None:
    """`valueString` of `value[x]` → string; None when the key is not one of the element's types."""
    stem = elem.name[:-3]
    suffix = key[len(stem):]
    for t in elem.types:
        if t.code[:1].upper() + t.code[1:] == suffix:
            return t.code
    return None


def _place(defs: dict[str, Elem], key: str) -> tuple[int, Elem, str] | None:
    """Where a JSON key goes among the children: its rank, definition and type code."""
    for rank, (name, elem) in enumerate(defs.items()):
        if name == key and not name.endswith("[x]"):
            return rank, elem, elem.types[0].code if elem.types else "BackboneElement"
        if name.endswith("[x]") and key.startswith(name[:-3]) and len(key) > len(name) - 3:
            code = _choice_code(elem, key)
            if code is not None:
                return rank, elem, code
    return None


# -- writing ---------------------------------------------------------------------------------------------------

def _resource(res: dict[str, Any], out: list[str], depth: int, xmlns: str = "") -> None:
    rtype = res.get("resourceType")
    rtype = rtype if isinstance(rtype, str) and _NAME.fullmatch(rtype) else "Resource"
    out.append(f"{'  ' * depth}<{rtype}{xmlns}>")
    defs = _type_children(rtype) if rtype in base.resource_types() else None
    body = {k: v for k, v in res.items() if k != "resourceType"}
    _fill(out, depth + 1, defs, body, attributes=())  # a resource's id is an element
    out.append(f"{'  ' * depth}</{rtype}>")


def _fill(out: list[str], depth: int, defs: dict[str, Elem] | None, obj: dict[str, Any],
          attributes: tuple[str, ...] = ("id",)) -> None:
    keys = list(dict.fromkeys(k[1:] if k.startswith("_") else k for k in obj))
    keys = [k for k in keys if k not in attributes and _NAME.fullmatch(k)]
    placed: list[tuple[int, int, str, Elem | None, str | None]] = []
    for i, key in enumerate(keys):
        where = _place(defs, key) if defs is not None else None
        if where is None:
            placed.append((len(defs or ()), i, key, None, None))  # no place known: after the rest, as given
        else:
            placed.append((where[0], i, key, where[1], where[2]))
    for _, _, key, elem, code in sorted(placed, key=lambda p: (p[0], p[1])):
        values, extras = obj.get(key), obj.get("_" + key)
        many = isinstance(values, list) or isinstance(extras, list)
        vals = list(values) if isinstance(values, list) else [] if many else [values]
        exts = list(extras) if isinstance(extras, list) else [] if many else [extras]
        n = max(len(vals), len(exts))
        vals += [None] * (n - len(vals))
        exts += [None] * (n - len(exts))
        for v, x in zip(vals, exts, strict=True):
            if v is None and x is None:
                continue
            _element(out, depth, key, elem, code, v, x)


def _element(out: list[str], depth: int, key: str, elem: Elem | None, code: str | None, value: Any,
             extra: Any) -> None:
    pad = "  " * depth
    if code == "xhtml" or (key == "div" and isinstance(value, str) and elem is None):
        out.append(pad + _div(value))
        return
    if isinstance(value, dict) and "resourceType" in value:
        out.append(f"{pad}<{key}>")
        _resource(value, out, depth + 1)
        out.append(f"{pad}</{key}>")
        return
    if isinstance(value, dict):
        if elem is not None and code == "BackboneElement":
            defs: dict[str, Elem] | None = _backbone_children(elem)
        else:
            defs = _type_children(code) if code else None
        names = _ATTRIBUTES.get(code or "", ())
        attrs = "".join(f" {a}={_attr(str(value[a]))}" for a in ("id", *names) if isinstance(value.get(a), str))
        out.append(f"{pad}<{key}{attrs}>")
        _fill(out, depth + 1, defs, value, attributes=("id", *names))
        out.append(f"{pad}</{key}>")
        return
    if isinstance(value, list):  # a list inside a list has no FHIR form: each item as the element again
        for item in value:
            _element(out, depth, key, elem, code, item, None)
        return
    attrs = ""
    if value is not None:
        attrs = f" value={_attr(value if isinstance(value, str) else json.dumps(value))}"
    extra = extra if isinstance(extra, dict) else {}
    if isinstance(extra.get("id"), str):
        attrs = f" id={_attr(extra['id'])}" + attrs
    inner = {k: v for k, v in extra.items() if k != "id"}
    if not inner:
        out.append(f"{pad}<{key}{attrs}/>")
        return
    out.append(f"{pad}<{key}{attrs}>")
    _fill(out, depth + 1, _type_children("Element"), inner, attributes=())
    out.append(f"{pad}</{key}>")


def _div(value: Any) -> str:
    """The narrative as XHTML in XHTML's namespace: as given when it is such, else its text in a div."""
    text = value if isinstance(value, str) else json.dumps(value)
    el = None
    if "<!" not in text:  # no DOCTYPE, entity declarations or CDATA: markup only
        try:
            el = etree.fromstring(text.encode("utf-8"), _DIV_PARSER)
        except (etree.XMLSyntaxError, ValueError, UnicodeEncodeError):
            el = None
    if el is not None and el.tag == f"{{{XHTML_NS}}}div":
        return etree.tostring(el, encoding="unicode")
    if el is not None and el.tag == "div" and isinstance(value, str):
        # a div with no namespace: the same markup, in XHTML's
        named = re.sub(r"^(\s*<div)\b", rf'\1 xmlns="{XHTML_NS}"', value, count=1)
        if named != value:
            return _div(named)
    return f'<div xmlns="{XHTML_NS}">{escape(_text(text))}</div>'
