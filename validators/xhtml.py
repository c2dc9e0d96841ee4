"""XHTML as FHIR and MedCom use it: narrative divs (txt-1, txt-2) and the note's HTML content.

Parsed with lxml with entities, DTDs and network access off; nothing in it is ever executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree, html

from kroniker.validators.source import DEFAULT_MAX_XML_ATTRIBUTES

XHTML_NS = "http://www.w3.org/1999/xhtml"

# HTML 4.0 chapters 7-11 and 15 as FHIR R4 allows them in narrative (plus a, img, style attributes).
NARRATIVE_ELEMENTS = frozenset(
    "a abbr acronym b big blockquote br caption cite code col colgroup dd dfn div dl dt em h1 h2 h3 h4 h5 h6 "
    "hr i img li ol p pre q samp small span strong sub sup table tbody td tfoot th thead tr tt ul var".split())
ACTIVE_ELEMENTS = frozenset(
    "script iframe frame frameset object embed applet base link meta form input button select textarea "
    "svg math audio video source track portal".split())
URL_ATTRIBUTES = frozenset("href src action formaction background data codebase cite poster srcset "
                           "xlink:href lowsrc dynsrc".split())
_SCRIPT_SCHEME = re.compile(r"^\s*(javascript|vbscript|livescript|data\s*:\s*text/html)", re.I)
_EXTERNAL = re.compile(r"^\s*([a-z][a-z0-9+.-]*:|//)", re.I)
_CSS_EXTERNAL = re.compile(r"url\s*\(|@import|expression\s*\(|behavior\s*:", re.I)
_CTRL = re.compile(r"[\x00-\x20]+")

# MedCom's simplified HTML (FNUX): line breaks, bold, italic, underline, monospace.
SIMPLE_ELEMENTS = frozenset("div p br b strong i em u tt code pre span".split())


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False)


@dataclass
class HtmlProblems:
    """What was found in a piece of XHTML."""

    syntax: str | None = None  # not well-formed: the parser's message
    active: list[str] = field(default_factory=list)  # script, handlers, javascript: URLs, external loads
    markup: list[str] = field(default_factory=list)  # outside the allowed elements / attributes
    text: str = ""  # the text content
    has_image: bool = False


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def _inspect(root: etree._Element, allowed: frozenset[str], problems: HtmlProblems) -> None:
    for el in root.iter():
        if not isinstance(el.tag, str):  # comments, processing instructions
            if isinstance(el, etree._ProcessingInstruction):
                problems.markup.append("<?…?>")
            continue
        name = _local(el.tag)
        if name in ACTIVE_ELEMENTS:
            problems.active.append(f"<{name}>")
        elif name not in allowed:
            problems.markup.append(f"<{name}>")
        if name == "img":
            problems.has_image = True
        if name == "style":
            problems.markup.append("<style>")
            if _CSS_EXTERNAL.search("".join(el.itertext())):
                problems.active.append("<style>@import/url()")
        if len(el.attrib) > DEFAULT_MAX_XML_ATTRIBUTES:
            # lxml looks each value up by name (quadratic: 40,000 attributes took 6 s), and no HTML element needs
            # this many: what cannot be inspected is not let through as safe.
            problems.active.append(f"<{name}> with {len(el.attrib)} attributes")
            continue
        for attr, value in el.attrib.items():
            aname = _local(attr) if "}" in attr else attr.lower()
            if aname.startswith("on"):
                problems.active.append(f"{name}@{aname}")
                continue
            if aname in URL_ATTRIBUTES or attr.endswith("}href"):
                if _SCRIPT_SCHEME.match(_CTRL.sub("", value)):
                    problems.active.append(f"{name}@{aname}={value[:40]}")
                elif _EXTERNAL.match(value) and not value.strip().lower().startswith(("data:image/", "#")) \
                        and (name != "a" or aname != "href"):
                    problems.active.append(f"{name}@{aname}={value[:60]}")
            if aname == "style":
                if _CSS_EXTERNAL.search(value):
                    problems.active.append(f"{name}@style")
                elif allowed is SIMPLE_ELEMENTS:
                    problems.markup.append(f"{name}@style")  # styling is outside MedCom's simplified HTML
    problems.text = "".join(t for t in root.itertext() if isinstance(t, str))


@lru_cache(maxsize=512)
def check_narrative(div: str) -> HtmlProblems:
    """txt-1 and txt-2: a narrative div in the XHTML namespace with only basic HTML and some text."""
    problems = HtmlProblems()
    try:
        root = etree.fromstring(div.encode("utf-8", "replace"), _parser())
    except etree.XMLSyntaxError as exc:
        problems.syntax = str(exc)
        return problems
    if root.tag != f"{{{XHTML_NS}}}div":
        problems.markup.append(f"root <{_local(root.tag)}> is not an XHTML div")
    _inspect(root, NARRATIVE_ELEMENTS, problems)
    return problems


@lru_cache(maxsize=64)
def check_note(text: str) -> HtmlProblems:
    """The decoded note: a well-formed XML fragment of XHTML in MedCom's simplified HTML.

    MedCom's test notes use an undeclared `x:` prefix for XHTML elements; it is read as XHTML.
    The note's MIME type is text/html, so a reader may well parse it as HTML rather than XML: active
    content is looked for with both parsers (a CDATA section hides a script from XML, not from HTML).
    A fragment that is not well-formed XML is still inspected, leniently, for active content.
    """
    problems = HtmlProblems()
    wrapped = f'<div xmlns="{XHTML_NS}" xmlns:x="{XHTML_NS}">{text}</div>'
    root = None
    try:
        root = etree.fromstring(wrapped.encode("utf-8", "replace"), _parser())
    except etree.XMLSyntaxError as exc:
        problems.syntax = str(exc).replace("line 1, column", "column")
    as_html = _html_fragment(text)
    if root is not None:
        _inspect(root, SIMPLE_ELEMENTS, problems)
        if as_html is not None:
            seen_by_html = HtmlProblems()
            _inspect(as_html, SIMPLE_ELEMENTS, seen_by_html)
            problems.active.extend(a for a in seen_by_html.active if a not in problems.active)
    elif as_html is not None:
        _inspect(as_html, SIMPLE_ELEMENTS, problems)
    else:
        problems.text = text
    return problems


def _html_fragment(text: str) -> etree._Element | None:
    text = text.encode("utf-8", "replace").decode("utf-8")
    try:
        return html.fragment_fromstring(text, create_parent="div",
                                        parser=html.HTMLParser(no_network=True, remove_comments=False))
    except (etree.ParserError, ValueError):
        return None
