"""A care package's fixed section in a note's XHTML ("Mål og planer"): written and read by one definition.

The section definition is package data (see `package_notes`): a heading and fields, each with its Danish label
and kind (text, date, code with Danish labels for its codes). Within MedCom's simplified HTML the note reads:

    <p>free text, lines split by <br/></p>                    (optional, before the section)
    <p><b>Mål og planer</b></p>
    <p><b>Mål:</b> …</p>  <p><b>Plan:</b> …</p>
    <p><b>Næste kontrol:</b> 2027-11-20</p>  <p><b>Triagefarve:</b> grøn</p>
    <p><b>Score:</b> <tt>startback.total</tt> 3</p>          (zero or more)

Only the labels are markup; every value is text (escaped by lxml when written; a value's line breaks are
`<br/>`), so no value can pose as a label or heading. Reading finds the heading paragraph (one bold element
with the heading's text and nothing else) and the labelled paragraphs after it, in any order.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

XHTML_NS = "http://www.w3.org/1999/xhtml"
_BOLD = frozenset({"b", "strong"})
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


@dataclass
class ReadSection:
    """What a note's XHTML says: the fields by key, scores, free text, and the problems found on the way."""

    values: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    free_text: str = ""
    problems: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (code, message key, params)
    found: bool = False


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _parse(text: str) -> etree._Element | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(f'<div xmlns="{XHTML_NS}" xmlns:x="{XHTML_NS}">{text}</div>'.encode(), parser)
    except etree.XMLSyntaxError:
        return None


def _text(el: etree._Element, skip: int = 0) -> str:
    """The text of a paragraph after its first `skip` children, `<br/>` as a line break."""
    parts = [] if skip else [el.text or ""]
    for i, child in enumerate(el):
        if i < skip:
            if i == skip - 1:
                parts.append(child.tail or "")
            continue
        if _local(child.tag) == "br":
            parts.append("\n")
        elif isinstance(child.tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _label_of(p: etree._Element) -> str | None:
    """The label of a labelled paragraph (its leading bold element's text), or None."""
    if (p.text or "").strip() or not len(p) or _local(p[0].tag) not in _BOLD:
        return None
    return "".join(p[0].itertext()).strip()


def read_section(html: str, section: dict[str, Any]) -> ReadSection:
    out = ReadSection()
    root = _parse(html)
    heading = str(section.get("heading", ""))
    if root is None:
        out.problems.append(("PACKAGE-NOTE-SECTION", "package-note-section-unreadable", {}))
        return out
    paragraphs = [p for p in root.iter() if _local(p.tag) == "p"]
    start = None
    for i, p in enumerate(paragraphs):
        if len(p) == 1 and _label_of(p) == heading and not (p[0].tail or "").strip():
            start = i
            break
    if start is None:
        out.problems.append(("PACKAGE-NOTE-SECTION", "package-note-section-missing", {}))
        free = [_text(p) for p in paragraphs if _label_of(p) is None]
        out.free_text = "\n".join(free).strip()
        return out
    out.found = True
    out.free_text = "\n".join(_text(p) for p in paragraphs[:start] if _label_of(p) is None).strip()
    by_label: dict[str, etree._Element] = {}
    for p in paragraphs[start + 1:]:
        label = _label_of(p)
        if label is not None and label.endswith(":"):
            by_label.setdefault(label[:-1].strip(), p)
    score_label = str((section.get("score") or {}).get("label", ""))
    for p in paragraphs[start + 1:]:
        if score_label and _label_of(p) == f"{score_label}:" and len(p) >= 2 and _local(p[1].tag) in ("tt", "code") \
                and not (p[0].tail or "").strip():
            out.scores["".join(p[1].itertext()).strip()] = _score_value(_text(p, skip=2).strip())
    for fdef in section.get("fields") or []:
        key, label = str(fdef.get("key")), str(fdef.get("label"))
        p = by_label.get(label)
        if p is None:
            if fdef.get("required"):
                out.problems.append(("PACKAGE-NOTE-FIELD", "package-note-field-missing", {"field": label}))
            continue
        value = _text(p, skip=1).strip()
        if not value:
            if fdef.get("required"):
                out.problems.append(("PACKAGE-NOTE-FIELD", "package-note-field-empty", {"field": label}))
            continue
        kind = fdef.get("kind")
        if kind == "date":
            if not is_date(value):
                out.problems.append(("PACKAGE-NOTE-VALUE", "package-note-value", {
                    "field": label, "found": value, "expected": "ÅÅÅÅ-MM-DD / YYYY-MM-DD"}))
                continue
        elif kind == "code":
            codes = {str(v): str(k) for k, v in (fdef.get("values") or {}).items()}
            if value not in codes:
                out.problems.append(("PACKAGE-NOTE-VALUE", "package-note-value", {
                    "field": label, "found": value, "expected": ", ".join(codes)}))
                continue
            value = codes[value]
        out.values[key] = value
    return out


def _score_value(text: str) -> Any:
    if _NUMBER.fullmatch(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    return text


def is_date(value: str) -> bool:
    if len(value) != 10:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def looks_like_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text))


# -- writing -------------------------------------------------------------------------------------------------

def _para(parent: etree._Element, label: str | None, value: str, code: str | None = None) -> None:
    p = etree.SubElement(parent, "p")
    last: etree._Element | None = None
    if label is not None:
        last = etree.SubElement(p, "b")
        last.text = label
    if code is not None:
        assert last is not None
        last.tail = " "
        last = etree.SubElement(p, "tt")
        last.text = code
    lines = value.split("\n")
    first = (" " if last is not None and lines[0] else "") + lines[0]
    if last is None:
        p.text = first
    else:
        last.tail = (last.tail or "") + first
    for line in lines[1:]:
        br = etree.SubElement(p, "br")
        br.tail = line


def write_section(values: dict[str, Any], section: dict[str, Any], free_text: str = "",
                  scores: dict[str, Any] | None = None) -> str:
    """The note's XHTML (MedCom's simplified HTML, no namespace, as MedCom's examples write it)."""
    root = etree.Element("div")
    if free_text:
        _para(root, None, free_text)
    heading = etree.SubElement(etree.SubElement(root, "p"), "b")
    heading.text = str(section["heading"])
    for fdef in section.get("fields") or []:
        value = values.get(fdef["key"])
        if value is None or value == "":
            continue
        if fdef.get("kind") == "code":
            value = (fdef.get("values") or {}).get(value, value)
        _para(root, f"{fdef['label']}:", str(value))
    score_label = str((section.get("score") or {}).get("label", "Score"))
    for sid, value in (scores or {}).items():
        _para(root, f"{score_label}:", value if isinstance(value, str) else repr(value), code=sid)
    return "".join(etree.tostring(child, encoding="unicode") for child in root)
