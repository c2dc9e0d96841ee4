"""FHIR XML read into the JSON shape by FHIR's XML rules (http://hl7.org/fhir/R4/xml.html), with line:column.

The engine only knows the JSON shape, so an XML document is converted into exactly what its JSON form
would parse to: primitives from their `value` attributes typed by their FHIR type, `id` attributes and a
primitive's extensions into `_name`, repeating elements into arrays (from the base structure's
cardinality), resources in `contained`/`entry.resource` unwrapped, the narrative's `div` as its XHTML
text. What XML adds — namespace, element order, elements and attributes with no place — is checked
against an XSD generated from the same structures (`xsd.py`) and reported as `xml-structure`.

lxml reads it with entities, DTDs and network access off; a DOCTYPE is refused before the parser sees it,
so nothing is expanded, fetched or read from disk.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator
from copy import deepcopy
from functools import cache
from itertools import islice
from typing import Any

from lxml import etree
from xmlschema.validators.exceptions import XMLSchemaChildrenValidationError

from kroniker.validators import base, xsd
from kroniker.validators.findings import Finding, JsonPath, Severity, finding
from kroniker.validators.source import DEFAULT_MAX_FINDINGS_PER_CODE, Limits, Parsed, _fatal, check_shape, decode
from kroniker.validators.structure import Elem

FHIR_NS = xsd.FHIR_NS
XHTML_NS = xsd.XHTML_NS

# Markup that is not a start tag is skipped whole, so every remaining "<name" is an element, in document order.
_MARKUP = re.compile(r"<(?:!--.*?-->|!\[CDATA\[.*?\]\]>|\?.*?\?>|![^>]*>|/[^>]*>|(?=[^\s/>!?]))", re.DOTALL)
_PROLOG_DOCTYPE = re.compile(r"(?:\s|<\?.*?\?>|<!--.*?-->)*(<!DOCTYPE)", re.DOTALL)
_DECLARED_ENCODING = re.compile(r"""\s*<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"  # xsi: attributes are the schema check's to judge
_NOT_ALLOWED_ATTRIBUTE = re.compile(r"'([^']+)' attribute not allowed")
_LIBXML_POSITION = re.compile(r",? line \d+, column \d+\s*$")
# libxml2's messages for the usual mistakes → catalogue texts (in both languages); others are shown as they are.
_LIBXML_DETAILS = [
    (re.compile(r"Premature end of data|Couldn't find end of Start Tag|EndTag: '</' not found"), "@xml-unfinished"),
    (re.compile(r"Opening and ending tag mismatch"), "@xml-tag-mismatch"),
    (re.compile(r"Extra content at the end of the document"), "@json-extra-data"),
    (re.compile(r"Entity '[^']*' not defined"), "@xml-undefined-entity"),
    (re.compile(r"Start tag expected"), "@xml-no-element"),
    (re.compile(r"Resource limit exceeded"), "@xml-too-long"),
    (re.compile(r"invalid (xml)?Char value"), "@xml-bad-char"),
]

_INTEGERS = {code: base.PRIMITIVE_RE["integer" if code == "integer64" else code]
             for code in ("integer", "unsignedInt", "positiveInt", "integer64")}
# `valueString` → string: the capitalised type names a choice element's name ends with.
_CHOICE_SUFFIX = {code[0].upper() + code[1:]: code for code in (*base.PRIMITIVES, *base.DATATYPES_COMPLEX)}


def parse_xml(name: str, raw: bytes, limits: Limits) -> Parsed:
    """Read FHIR XML into the JSON shape; raise Unreadable with a finding when it cannot be read at all."""
    text = decode(raw)
    _refuse_doctype(text)
    _refuse_other_encoding(text)
    root = _parse_tree(raw, limits)
    if _xml_depth(root, limits.max_depth * 2 + 8) > limits.max_depth * 2 + 8:
        raise _fatal("too-deep", limit=limits.max_depth)
    positions = _Positions(text, root)
    reader = _Reader(_namespace(root.tag), positions)
    data = reader.resource(root, ())
    check_shape(data, limits)
    findings = reader.findings
    if reader.ns == FHIR_NS:
        findings.extend(islice(structure_findings(root, reader, limits.max_findings_per_code), limits.max_findings))
    else:
        line, column = positions.of(root)
        findings.insert(0, finding(Severity.ERROR, "xml-structure", _local(root.tag), ("resourceType",),
                                   {"expected": FHIR_NS, "found": reader.ns or "-"}, message_key="xml-namespace",
                                   line=line, column=column))
    return Parsed(name, data, text, format="xml", locator=reader.locate, findings=findings)


# -- reading safely ---------------------------------------------------------------------------------------


def _refuse_doctype(text: str) -> None:
    """A DOCTYPE is how entity bombs and external entities get in; FHIR XML never needs one."""
    m = _PROLOG_DOCTYPE.match(text)
    if m:
        line, column = _line_col(text, m.start(1))
        raise _fatal("xml-syntax", key="xml-doctype", line=line, column=column)


def _refuse_other_encoding(text: str) -> None:
    # FHIR XML is always UTF-8 (and the bytes were just read as UTF-8): a declaration saying otherwise is wrong.
    m = _DECLARED_ENCODING.match(text)
    if m and m.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise _fatal("encoding", key="xml-encoding", found=m.group(1))


_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False, "huge_tree": False,
    "remove_comments": True, "remove_pis": True, "encoding": "utf-8", "collect_ids": False}


# Bytes handed to the parser at a time: a document over a count limit is refused after at most this much more.
_CHUNK = 64 * 1024


def _parse_tree(raw: bytes, limits: Limits) -> etree._Element:
    """The element tree, counting elements and attributes as the parser meets them and refusing a document
    over the limits before it is all read (and before anything else sees it)."""
    parser = etree.XMLPullParser(events=("start", "start-ns"), **_PARSER_OPTIONS)
    counter = _Counter(limits)
    try:
        for at in range(0, len(raw), _CHUNK):
            parser.feed(raw[at:at + _CHUNK])
            counter.take(parser.read_events())
        root = parser.close()
        counter.take(parser.read_events())
    except etree.XMLSyntaxError as exc:
        # The feed parser may stop at an error and only say at close that the document ended: its log has the cause.
        first = next(iter(parser.feed_error_log), None)
        msg = first.message if first is not None else exc.msg or str(exc)
        if "Excessive depth" in msg:
            raise _fatal("too-deep", limit=limits.max_depth) from None
        line, column = (first.line, first.column) if first is not None else exc.position or (None, None)
        detail = next((key for rx, key in _LIBXML_DETAILS if rx.search(msg)),
                      _LIBXML_POSITION.sub("", msg).replace("\n", " ").strip())
        raise _fatal("xml-syntax", line=line, column=column, detail=detail) from None
    if root.getroottree().docinfo.doctype:  # refused above already; kept in case the prolog scan is fooled
        raise _fatal("xml-syntax", key="xml-doctype", line=1, column=1)
    return root


class _Counter:
    """Elements in the document and attributes on each (namespace declarations included), as parsed."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.elements = 0
        self.declared = 0  # namespace declarations met since the last start tag: they belong to the next one

    def take(self, events: Iterator[tuple[str, Any]]) -> None:
        for event, item in events:
            if event == "start-ns":
                self.declared += 1
                continue
            self.elements += 1
            if self.elements > self.limits.max_elements:
                raise _fatal("too-large", key="too-many-elements", limit=self.limits.max_elements,
                             line=item.sourceline)
            attributes = len(item.attrib) + self.declared
            self.declared = 0
            if attributes > self.limits.max_xml_attributes:
                raise _fatal("too-large", key="xml-too-many-attributes", element=_local(item.tag),
                             count=attributes, limit=self.limits.max_xml_attributes, line=item.sourceline)


def _xml_depth(root: etree._Element, limit: int) -> int:
    """Element nesting, without recursion, stopping once past the limit (the converter recurses)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        el, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            break
        stack.extend((c, d + 1) for c in el if isinstance(c.tag, str))
    return deepest


# -- positions --------------------------------------------------------------------------------------------


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class _Positions:
    """Line:column of each element's start tag. lxml gives only a line (where the tag ends), so the start
    tags are found in the text, in document order, which is the order of `root.iter()`."""

    def __init__(self, text: str, root: etree._Element) -> None:
        self._text = text
        self._root = root
        self._index: dict[etree._Element, tuple[int, int]] | None = None

    def of(self, el: etree._Element) -> tuple[int, int]:
        if self._index is None:
            self._index = self._scan()
        return self._index.get(el) or (el.sourceline or 1, 1)

    def _scan(self) -> dict[etree._Element, tuple[int, int]]:
        text = self._text
        starts = [0, *(m.end() for m in re.finditer("\n", text))]
        tags = (m.start() for m in _MARKUP.finditer(text) if m.end() == m.start() + 1)
        out: dict[etree._Element, tuple[int, int]] = {}
        for el, offset in zip(self._root.iter(etree.Element), tags, strict=False):
            line = bisect_right(starts, offset)
            if el.sourceline is not None and line > el.sourceline:
                return out  # out of step with the parser (should not happen): lines only from here on
            out[el] = (line, offset - starts[line - 1] + 1)
        return out


# -- conversion -------------------------------------------------------------------------------------------


def _namespace(tag: Any) -> str | None:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else None


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def fhirpath(path: JsonPath, root: str) -> str:
    """("entry", 0, "resource", "title") → Bundle.entry[0].resource.title."""
    out = root
    for p in path:
        # a primitive's `_name` (its id and extensions) is `name` in FHIRPath
        out += f"[{p}]" if isinstance(p, int) else f".{p.removeprefix('_')}"
    return out


class _Reader:
    """Converts one document, remembering where each JSON path came from and what had no place in it."""

    def __init__(self, ns: str | None, positions: _Positions) -> None:
        self.ns = ns
        self.positions = positions
        self.at: dict[JsonPath, etree._Element] = {}
        self.path_of: dict[etree._Element, JsonPath] = {}
        self.defs_of: dict[etree._Element, dict[str, Elem]] = {}  # the definitions an element's children meet
        # Why an element has no place, where reading it already told (message key, parameters); the schema
        # finds the same elements and this says it in FHIR's terms.
        self.misplaced: dict[etree._Element, tuple[str, dict[str, Any]]] = {}
        self.containers: set[etree._Element] = set()  # Resource-typed elements (entry.resource, contained)
        self.orders: dict[etree._Element, _Order] = {}  # for the schema's order findings, per parent
        self.findings: list[Finding] = []
        self.resource_types: set[str] = set()
        self.root_type = "(document)"

    def locate(self, path: JsonPath) -> tuple[int, int] | None:
        """Line:column of a JSON path; a path that is not there (a missing element) at its nearest ancestor."""
        p = tuple(path)
        while p not in self.at:
            if not p:
                return None
            p = p[:-1]
        if len(p) < len(path) and (*p, "resourceType") in self.at:
            p = (*p, "resourceType")  # a resource's missing child: at the resource's element, not its wrapper
        return self.positions.of(self.at[p])

    def order(self, parent: etree._Element) -> _Order:
        found = self.orders.get(parent)
        if found is None:
            found = self.orders[parent] = _Order(parent, self.defs_of.get(parent, {}))
        return found

    def mark(self, el: etree._Element, path: JsonPath, *also: JsonPath) -> None:
        self.path_of.setdefault(el, path)
        for p in (path, *also):
            self.at.setdefault(p, el)

    def elements(self, el: etree._Element) -> list[etree._Element]:
        return [c for c in el if isinstance(c.tag, str)]

    def finding(self, el: etree._Element, code: str, path: JsonPath, key: str | None, **params: Any) -> None:
        line, column = self.positions.of(el)
        self.findings.append(finding(Severity.ERROR, code, fhirpath(path, self.root_type), path, params,
                                     message_key=key, line=line, column=column))

    # resources
    def resource(self, el: etree._Element, path: JsonPath) -> dict[str, Any]:
        rtype = _local(el.tag)
        if not path:
            self.root_type = rtype
        self.mark(el, path, (*path, "resourceType"))
        obj: dict[str, Any] = {"resourceType": rtype}
        if rtype not in base.resource_types():
            self.misplaced[el] = ("xml-unknown", {})
        else:
            self.resource_types.add(rtype)
        struct = base.base_structure(rtype) if rtype in base.resource_types() else None
        if struct is None:
            obj.update(self.loose_children(el, path))  # the engine reports the type as unknown or unavailable
            return obj
        self.children(el, struct.root.children, obj, path, attributes=())  # a resource's id is an element
        return obj

    def contained(self, el: etree._Element, path: JsonPath) -> dict[str, Any]:
        """A Resource-typed element holds one element named after the resource's type."""
        self.mark(el, path)
        self.containers.add(el)
        inner, *more = [c for c in self.elements(el) if _namespace(c.tag) == self.ns] or [None]
        for extra in more:
            self.misplaced[extra] = ("xml-repeat", {})
        return {} if inner is None else self.resource(inner, path)

    # elements
    def children(self, el: etree._Element, defs: dict[str, Elem], obj: dict[str, Any], path: JsonPath,
                 attributes: tuple[str, ...] = ("id",)) -> None:
        """The child elements of `el` into `obj`, each by its definition in `defs`; `attributes` are the
        definitions that XML writes as attributes of `el`, not as elements."""
        self.defs_of[el] = defs
        groups: dict[str, list[etree._Element]] = {}
        for child in self.elements(el):
            ns, name = _namespace(child.tag), _local(child.tag)
            if name == "div" and "div" in defs:
                if ns != XHTML_NS:  # the narrative is XHTML, in XHTML's namespace, not FHIR's
                    self.misplaced[child] = ("xml-element-namespace", {"found": ns or "-", "expected": XHTML_NS})
                elif "div" not in obj:
                    self.mark(child, (*path, "div"))
                    obj["div"] = _xhtml_text(child)
            elif ns == self.ns:
                groups.setdefault(name, []).append(child)
            # any other namespace has no place in FHIR: the schema says so
        chosen: dict[str, str] = {}  # choice element → the name it was given first
        for name, els in groups.items():
            if name in attributes:
                self.attribute_as_element(obj, name, els, path)
                continue
            found = _definition(defs, name)
            if found is None:
                self.misplaced.update((e, ("xml-unknown", {})) for e in els)
                self.put_loose(obj, name, els, path)
                continue
            elem, code = found
            if elem.choice and chosen.setdefault(elem.name, name) != name:
                # JSON would hold both names too: the engine counts them (card-max); the schema reports the order
                self.misplaced.update((e, ("xml-choice-repeat", {"choice": elem.name})) for e in els)
            if not elem.is_list and len(els) > 1:
                self.misplaced.update((e, ("xml-repeat", {})) for e in els[1:])  # the first is read
                els = els[:1]
            if base.is_primitive(code):
                els = [e for e in els if self.has_content(e, (*path, name))]
            if els:
                self.put(obj, name, els, elem, code, path)

    def attribute_as_element(self, obj: dict[str, Any], name: str, els: list[etree._Element],
                             path: JsonPath) -> None:
        """`<url value="…"/>` where XML has `url="…"`: reported, and read (unless the attribute is there too)."""
        self.misplaced.update((e, ("xml-attribute-as-element", {})) for e in els)
        value = els[0].get("value")
        if value is not None and name not in obj:
            obj[name] = value
            self.mark(els[0], (*path, name))

    def put(self, obj: dict[str, Any], name: str, els: list[etree._Element], elem: Elem, code: str,
            path: JsonPath) -> None:
        values: list[Any] = []
        extras: list[Any] = []
        for i, e in enumerate(els):
            if elem.is_list:
                ipath, xpath = (*path, name, i), (*path, f"_{name}", i)
                self.mark(e, ipath, (*path, name), xpath, (*path, f"_{name}"))
            else:
                ipath, xpath = (*path, name), (*path, f"_{name}")
                self.mark(e, ipath, xpath)
            if base.is_primitive(code):
                value, extra = self.primitive(e, code, ipath, xpath)
            elif code == "Resource" or code in base.resource_types():
                value, extra = self.contained(e, ipath), None
            else:
                value, extra = self.complex(e, elem, code, ipath), None
            values.append(value)
            extras.append(extra)
        # A primitive with only an id or extensions has no value: JSON leaves the value (or all-null array) out.
        if elem.is_list:
            if any(v is not None for v in values):
                obj[name] = values
            if any(x is not None for x in extras):
                obj[f"_{name}"] = extras
            return
        if values[0] is not None:
            obj[name] = values[0]
        if extras[0] is not None:
            obj[f"_{name}"] = extras[0]

    def has_content(self, e: etree._Element, path: JsonPath) -> bool:
        if "value" in e.attrib or "id" in e.attrib or self.elements(e):
            return True
        if not (e.text or "").strip():  # text instead of a value attribute is the schema's to report
            self.finding(e, "xml-structure", path, "xml-empty", element=_local(e.tag))  # no JSON form to give it
        return False

    def primitive(self, e: etree._Element, code: str, path: JsonPath,
                  ext_path: JsonPath) -> tuple[Any, dict[str, Any] | None]:
        raw = e.get("value")
        value = None if raw is None else self.typed(raw, code, e, path)
        extra: dict[str, Any] = {}
        if "id" in e.attrib:
            extra["id"] = e.get("id")
        self.children(e, _element_children(), extra, ext_path, attributes=("id",))
        return value, (extra or None)

    def typed(self, raw: str, code: str, e: etree._Element, path: JsonPath) -> Any:
        """The JSON value FHIR's JSON form has for this XML value: numbers and booleans unquoted."""
        if code == "boolean":
            if raw in ("true", "false"):
                return raw == "true"
        elif code == "decimal":
            if base.PRIMITIVE_RE["decimal"].fullmatch(raw):
                # FHIR's decimal syntax is JSON's number syntax: read it as json.loads reads the JSON form.
                return json.loads(raw)
        elif code in _INTEGERS:
            if _INTEGERS[code].fullmatch(raw):
                return int(raw)
        else:
            return raw
        # Not a literal of its type: kept as text and said here in XML's terms (the engine would speak of JSON
        # types); the engine's finding at the same place is then a repeat, and dropped.
        self.finding(e, "datatype", path, None, type=code, found=raw)
        return raw

    def complex(self, e: etree._Element, elem: Elem, code: str, path: JsonPath) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for attr in ("id", *xsd.ATTRIBUTES.get(code, ())):
            if attr in e.attrib:
                obj[attr] = e.get(attr)
                self.mark(e, (*path, attr))
        self.children(e, _children_of(elem, code), obj, path, attributes=("id", *xsd.ATTRIBUTES.get(code, ())))
        return obj

    # elements with no definition: kept under their own name, so the engine reports them as unknown
    def put_loose(self, obj: dict[str, Any], name: str, els: list[etree._Element], path: JsonPath) -> None:
        if name in obj:
            return
        values = []
        for i, e in enumerate(els):
            ipath = (*path, name, i) if len(els) > 1 else (*path, name)
            self.mark(e, ipath, (*path, name))
            values.append(self.loose(e, ipath))
        obj[name] = values if len(values) > 1 else values[0]

    def loose(self, e: etree._Element, path: JsonPath) -> Any:
        kids = [c for c in self.elements(e) if _namespace(c.tag) == self.ns]
        if not kids and set(e.attrib) <= {"value"}:
            return e.get("value", "")
        obj: dict[str, Any] = {k: v for k, v in e.attrib.items() if isinstance(k, str) and not k.startswith("{")}
        obj.update(self.loose_children(e, path))
        return obj

    def loose_children(self, e: etree._Element, path: JsonPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        groups: dict[str, list[etree._Element]] = {}
        for c in self.elements(e):
            if _namespace(c.tag) == self.ns:
                groups.setdefault(_local(c.tag), []).append(c)
        for name, els in groups.items():
            self.put_loose(out, name, els, path)
        return out


def _xhtml_text(div: etree._Element) -> str:
    """The narrative's div as its JSON form has it: XHTML as the default namespace, declaring only what it uses."""
    copy = deepcopy(div) if div.prefix is None else _unprefixed(div, None)
    copy.tail = None
    etree.cleanup_namespaces(copy)  # the document's own declarations (xmlns:xsi, ...) are in scope, not used
    return etree.tostring(copy, encoding="unicode")


def _unprefixed(el: etree._Element, parent: etree._Element | None) -> etree._Element:
    """A copy of `<h:div xmlns:h="…xhtml">` as `<div xmlns="…xhtml">`: FHIR JSON's div has XHTML as its default."""
    attrib = dict(el.attrib)
    new = etree.Element(el.tag, attrib, nsmap={None: XHTML_NS}) if parent is None else \
        etree.SubElement(parent, el.tag, attrib)
    new.text, new.tail = el.text, el.tail
    for child in el:
        if isinstance(child.tag, str):
            _unprefixed(child, new)
    return new


def _definition(defs: dict[str, Elem], name: str) -> tuple[Elem, str] | None:
    """The element definition an XML element name stands for, and its type (`valueString` → value[x], string)."""
    elem = defs.get(name)
    if elem is not None and not elem.choice:
        return elem, elem.types[0].code if elem.types else "BackboneElement"
    for elem in defs.values():
        stem = elem.name[:-3]
        if elem.choice and name.startswith(stem) and name[len(stem):] in _CHOICE_SUFFIX:
            return elem, _CHOICE_SUFFIX[name[len(stem):]]
    return None


def _children_of(elem: Elem, code: str) -> dict[str, Elem]:
    if elem.children:
        return elem.children
    if elem.content_ref and elem.owner is not None:
        target = elem.owner.by_id.get(elem.content_ref.split("#", 1)[-1])
        if target is not None:
            return target.children
    struct = base.base_structure(code)
    return struct.root.children if struct else {}


@cache
def _element_children() -> dict[str, Elem]:
    """What a primitive holds besides its value: extensions (its id is an attribute)."""
    struct = base.base_structure("Element")
    assert struct is not None
    return {k: v for k, v in struct.root.children.items() if k != "id"}


# -- the structure check ----------------------------------------------------------------------------------


def structure_findings(root: etree._Element, reader: _Reader,
                       limit: int = DEFAULT_MAX_FINDINGS_PER_CODE) -> Iterator[Finding]:
    """Element order, elements and attributes with no place, checked against the generated XSD."""
    types = frozenset(reader.resource_types)
    if _local(root.tag) not in types:
        return  # not a resource kroniker knows: the engine reports the type
    schema = xsd.schema_for(types)
    guard = _SchemaGuard(reader, limit)
    for err in schema.iter_errors(root, use_location_hints=False, validation_hook=guard):
        yield _structure_finding(err, reader)
    yield from guard.findings


class _SchemaGuard:
    """A validation hook for xmlschema that keeps its work linear in the document: called for each element before
    the schema reads it.

    xmlschema makes an error for each attribute with no place, and each error copies the element's whole
    attribute map into its message (`repr`): quadratic, 3,000 attributes on one element took 100 s. So those
    attributes are taken off the element here, said in one finding per element. And each error for a child with
    no place counts the parent's children (lxml walks them): quadratic in the siblings, 45,000 unknown children
    took 20 s. So a parent with more such children than `limit` is said here, its first children with no place
    listed, and not given to the schema. The tree is kroniker's own, already read into the JSON shape;
    only the schema check sees it after this.
    """

    def __init__(self, reader: _Reader, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self.findings: list[Finding] = []
        self.declared: dict[int, frozenset[str | None]] = {}  # per XSD element: the attribute names its type has

    def __call__(self, el: etree._Element, xsd_element: Any) -> bool:
        if el.attrib:
            self.take_undeclared_attributes(el, xsd_element)
        # True: said here, the schema skips this element and what it holds; False: validated as usual
        return len(el) > self.limit and self.too_many_misplaced(el)

    def take_undeclared_attributes(self, el: etree._Element, xsd_element: Any) -> None:
        declared = self.declared.get(id(xsd_element))
        if declared is None:
            declared = self.declared[id(xsd_element)] = frozenset(xsd_element.get_attributes(xsd_element.type))
        if None in declared:  # xs:anyAttribute: anything goes
            return
        extra = [name for name in el.attrib if name not in declared and not name.startswith(_XSI)]
        if extra:
            self.add(el, "xml-attribute", {"name": extra[0], "element": _local(el.tag)})
            for name in extra:
                del el.attrib[name]

    def too_many_misplaced(self, el: etree._Element) -> bool:
        reader = self.reader
        late = reader.order(el).late
        misplaced = [c for c in reader.elements(el)
                     if c in reader.misplaced or c in late or c not in reader.path_of]
        if len(misplaced) <= self.limit:
            return False
        # The summary and the children listed are within one code's share of the report (the summary first).
        shown = misplaced[:max(self.limit - 1, 0)]
        self.add(el, "xml-children-unchecked", {"element": _local(el.tag), "count": len(misplaced),
                                                "shown": len(shown)})
        for child in shown:
            key, params = _child_problem(el, child, reader)
            self.add(child, key, params)
        return True

    def add(self, el: etree._Element, key: str, params: dict[str, Any]) -> None:
        path, loc = _where(el, self.reader)
        line, column = self.reader.positions.of(el)
        self.findings.append(finding(Severity.ERROR, "xml-structure", loc, path, params, message_key=key,
                                     line=line, column=column))


def _structure_finding(err: Any, reader: _Reader) -> Finding:
    child = getattr(err, "invalid_child", None)
    el = child if child is not None else err.elem
    if child is not None:
        key, params = _child_problem(err.elem, child, reader)
    elif el in reader.containers and isinstance(err, XMLSchemaChildrenValidationError):
        key, params = "xml-no-resource", {"element": _local(el.tag)}
    else:
        reason = str(err.reason or err.message)
        attribute = _NOT_ALLOWED_ATTRIBUTE.search(reason)
        if attribute:
            key, params = "xml-attribute", {"name": attribute.group(1)}
        elif "character data" in reason:
            key, params = "xml-text", {}
        else:
            key, params = "xml-schema", {"detail": reason}  # xmlschema's own words (English)
        params["element"] = _local(el.tag)
    path, loc = _where(el, reader)
    line, column = reader.positions.of(el)
    return finding(Severity.ERROR, "xml-structure", loc, path, params, message_key=key, line=line, column=column)


def _child_problem(parent: etree._Element, child: etree._Element, reader: _Reader) -> tuple[str, dict[str, Any]]:
    """Why a child element has no place where it stands: as reading found, else namespace or order."""
    params: dict[str, Any] = {"name": _local(child.tag), "parent": _local(parent.tag)}
    if child in reader.misplaced:
        key, more = reader.misplaced[child]
        return key, params | more
    ns = _namespace(child.tag)
    if ns != FHIR_NS:
        return "xml-element-namespace", params | {"found": ns or "-", "expected": FHIR_NS}
    before = reader.order(parent).belongs_before(child)
    return ("xml-order", params | {"before": before}) if before else ("xml-order-plain", params)


class _Order:
    """FHIR's order among one parent's children, worked out once per parent: the schema may report many of
    them, and walking the siblings again for each would be quadratic in their number."""

    def __init__(self, parent: etree._Element, defs: dict[str, Elem]) -> None:
        self.defs = defs
        self.rank_of = {elem.name: i for i, elem in enumerate(defs.values())}
        self.position: dict[etree._Element, int] = {}
        self.first: dict[int, tuple[int, str]] = {}  # rank → position and name of the first sibling with it
        self.late: set[etree._Element] = set()  # children after a sibling that FHIR's order puts after them
        highest = -1
        for position, sibling in enumerate(parent):
            self.position[sibling] = position
            rank = self.rank(sibling) if isinstance(sibling.tag, str) else None
            if rank is not None:
                self.first.setdefault(rank, (position, _local(sibling.tag)))
                if rank < highest:
                    self.late.add(sibling)
                highest = max(highest, rank)

    def rank(self, el: etree._Element) -> int | None:
        found = _definition(self.defs, _local(el.tag))
        return self.rank_of.get(found[0].name) if found else None

    def belongs_before(self, child: etree._Element) -> str | None:
        """The first earlier sibling that FHIR's order puts after `child`, if any."""
        mine = self.rank(child)
        position = self.position.get(child)
        if mine is None or position is None:
            return None
        earlier = [first for rank, first in self.first.items() if rank > mine and first[0] < position]
        return min(earlier)[1] if earlier else None


def _where(el: etree._Element, reader: _Reader) -> tuple[JsonPath, str]:
    """The JSON path and FHIRPath of an element: its own if it was converted, else below its nearest ancestor."""
    tail: list[str] = []
    node: etree._Element | None = el
    while node is not None and node not in reader.path_of:
        tail.insert(0, _local(node.tag))
        node = node.getparent()
    path = reader.path_of.get(node, ()) if node is not None else ()
    return (*path, *tail), ".".join([fhirpath(path, reader.root_type), *tail])
