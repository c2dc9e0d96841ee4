"""JSON in XML for the routes outside the FHIR base (/health, /blocks, /admin/*): W3C's representation.

Their answers and bodies are plain JSON, not FHIR resources, so FHIR's XML has no form for them. XML clients get
the mapping W3C defined for exactly this, XPath and XQuery Functions 3.1 §17.5 (fn:json-to-xml, fn:xml-to-json;
https://www.w3.org/TR/xpath-functions-31/#json-to-xml-mapping): in the namespace
http://www.w3.org/2005/xpath-functions, an object is `map`, an array `array`, and `string`, `number`, `boolean`,
`null` the rest; an object's members carry their name in `key`. A string (or key) holding a character XML cannot
carry is written with its JSON escapes and `escaped="true"` (`escaped-key="true"`), as §17.5.2 allows, so every
JSON value has an XML form and reads back as itself.

Reading is strict, as fn:xml-to-json is: elements of that namespace only, a map's members each with a distinct
key, an array's without, numbers and booleans in their lexical forms, no text beside elements. The parser has
entities, DTDs and the network off and a DOCTYPE is refused; the caller bounds the size (the route's body limit)
and the nesting (`max_depth`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from lxml import etree

from kroniker.reference_server.inputs import BadInput

NS = "http://www.w3.org/2005/xpath-functions"
MEDIA_TYPE = "application/xml"
CONTENT_TYPE = "application/xml; charset=utf-8"
_TYPES = ("map", "array", "string", "number", "boolean", "null")
# XML 1.0 §2.2 Char: what may stand in an XML document as itself.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPED = re.compile("[^\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# JSON's escapes (RFC 8259 §7): what `escaped="true"` text may hold after a backslash.
_ESCAPE = re.compile(r'\\(?:(["\\/bfnrt])|u([0-9a-fA-F]{4}))')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# A number as xs:double writes one (the type fn:xml-to-json takes); INF and NaN have no JSON form.
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                          remove_comments=True, remove_pis=True)


# -- writing -------------------------------------------------------------------------------------------------

def dumps(value: Any) -> bytes:
    """A JSON value (as json.loads gives it) as an XML document in W3C's representation."""
    root = _element(value, None)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _element(value: Any, key: str | None, parent: etree._Element | None = None) -> etree._Element:
    kind = _kind(value)
    tag = f"{{{NS}}}{kind}"
    el = etree.Element(tag, nsmap={None: NS}) if parent is None else etree.SubElement(parent, tag)
    if key is not None:
        text, escaped = _text(key)
        el.set("key", text)
        if escaped:
            el.set("escaped-key", "true")
    if kind == "map":
        for k, v in value.items():
            _element(v, k, el)
    elif kind == "array":
        for v in value:
            _element(v, None, el)
    elif kind == "string":
        text, escaped = _text(value)
        el.text = text
        if escaped:
            el.set("escaped", "true")
    elif kind == "boolean":
        el.text = "true" if value else "false"
    elif kind == "number":
        el.text = json.dumps(value)
    return el


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return "number"
    if value is None:
        return "null"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _text(value: str) -> tuple[str, bool]:
    """The text to write, and whether it is escaped (a character XML cannot hold is in it)."""
    if not _NOT_XML.search(value):
        return value, False
    # Escaped text is read with JSON's escapes, so its backslashes are escaped too, and its control characters
    # all (tab, line feed and carriage return included) as JSON writes them: the text is a JSON string's.
    return _ESCAPED.sub(_u_escape, value.replace("\\", "\\\\")), True


def _u_escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code > 0xFFFF:  # not reached (such characters are XML), kept for a narrow build's sake
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


# -- reading -------------------------------------------------------------------------------------------------

def loads(body: bytes, *, max_depth: int) -> Any:
    """The JSON value an XML body in W3C's representation stands for; BadInput (400) when it is not one."""
    head = body[:4096].lstrip()
    if re.match(rb"(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", head, re.DOTALL | re.IGNORECASE):
        raise BadInput(400, "jx-doctype")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadInput(400, "jx-syntax", detail=str(exc)[:200]) from None
    if root.getroottree().docinfo.doctype:
        raise BadInput(400, "jx-doctype")
    value, _ = _value(root, 1, max_depth)
    return value


def _value(el: etree._Element, depth: int, max_depth: int) -> tuple[Any, str | None]:
    """The element's value, and its key (None when it has none)."""
    if not isinstance(el.tag, str) or not el.tag.startswith(f"{{{NS}}}") or etree.QName(el).localname not in _TYPES:
        name = etree.QName(el).text if isinstance(el.tag, str) else str(el.tag)
        raise BadInput(400, "jx-element", element=name[:80])
    kind = etree.QName(el).localname
    key = _attributes(el, kind)
    if kind in ("map", "array"):
        if depth > max_depth:
            raise BadInput(400, "too-deep", limit=max_depth)
        if (el.text or "").strip() or any((c.tail or "").strip() for c in el):
            raise BadInput(400, "jx-text", element=kind)
        if kind == "array":
            items = []
            for child in el:
                item, item_key = _value(child, depth + 1, max_depth)
                if item_key is not None:
                    raise BadInput(400, "jx-key", element=f"array/{etree.QName(child).localname}")
                items.append(item)
            return items, key
        members: dict[str, Any] = {}
        for child in el:
            item, item_key = _value(child, depth + 1, max_depth)
            if item_key is None or item_key in members:
                raise BadInput(400, "jx-key", element=f"map/{etree.QName(child).localname}")
            members[item_key] = item
        return members, key
    if len(el):
        raise BadInput(400, "jx-text", element=kind)
    text = el.text or ""
    if kind == "string":
        return (_unescape(text) if el.get("escaped") in ("true", "1") else text), key
    if kind == "null":
        if text.strip():
            raise BadInput(400, "jx-value", element=kind, found=text[:40])
        return None, key
    if kind == "boolean":  # xs:boolean's four lexical forms, whitespace collapsed
        word = text.strip()
        if word not in ("true", "false", "1", "0"):
            raise BadInput(400, "jx-value", element=kind, found=text[:40])
        return word in ("true", "1"), key
    word = text.strip()
    if not _NUMBER.fullmatch(word) or len(word) > 400:
        raise BadInput(400, "jx-value", element=kind, found=text[:40])
    number = float(word)
    if not math.isfinite(number):
        raise BadInput(400, "jx-value", element=kind, found=text[:40])
    return (int(word) if re.fullmatch(r"[+-]?\d+", word) else number), key


def _attributes(el: etree._Element, kind: str) -> str | None:
    allowed = {"key", "escaped-key"} | ({"escaped"} if kind == "string" else set())
    for name in el.attrib:
        if name not in allowed and not name.startswith("{"):  # the schema lets other namespaces' attributes by
            raise BadInput(400, "jx-attribute", element=kind, attribute=str(name)[:40])
    for flag in ("escaped", "escaped-key"):
        if el.get(flag) not in (None, "true", "false", "1", "0"):
            raise BadInput(400, "jx-attribute", element=kind, attribute=flag)
    key = el.get("key")
    if key is None:
        if el.get("escaped-key") is not None:
            raise BadInput(400, "jx-attribute", element=kind, attribute="escaped-key")
        return None
    return _unescape(key) if el.get("escaped-key") in ("true", "1") else key


def _unescape(text: str) -> str:
    """Escaped text read with JSON's escapes; a backslash that starts none is an error, as in fn:xml-to-json."""
    if "\\" not in text:
        return text
    out, at = [], 0
    for m in _ESCAPE.finditer(text):
        if "\\" in text[at:m.start()]:
            break
        out.append(text[at:m.start()])
        out.append(_SIMPLE[m.group(1)] if m.group(1) else chr(int(m.group(2), 16)))
        at = m.end()
    rest = text[at:]
    if "\\" in rest:
        raise BadInput(400, "jx-escape", found=rest[rest.index("\\"):][:12])
    out.append(rest)
    # A pair of escaped surrogates is the character they encode (JSON's way of writing one beyond U+FFFF).
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
