"""Reading what the caller gives the validator: bytes, a document's text, or a file path."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kroniker.validators import bounded
from kroniker.validators.bounded import json_detail
from kroniker.validators.findings import Finding, Severity, finding
from kroniker.validators.jsonpos import JsonPath, PositionIndex

Source = bytes | bytearray | memoryview | str | os.PathLike


DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_NOTE_BYTES = 2 * 1024 * 1024
# A MedCom document has a few hundred elements (a Shared Note ~200, a diagnosis card ~150); 50,000 leaves room for
# a ConditionList of over a thousand conditions and keeps the walk under a second.
DEFAULT_MAX_ELEMENTS = 50_000
# FHIR XML puts at most value, id and url on an element, XHTML a handful; each attribute with no place costs the
# XML Schema check a copy of the element's whole attribute map, so the count per element must stay small.
DEFAULT_MAX_XML_ATTRIBUTES = 32
DEFAULT_MAX_FINDINGS = 1_000  # the walk's budget: a document with more problems is refused after this many
DEFAULT_MAX_FINDINGS_PER_CODE = 50  # listed per code; the rest are counted in one finding of that code


@dataclass(frozen=True, slots=True)
class Limits:
    """Explicit limits on input and on the work done for it, so hostile documents cost bounded time and memory.

    Every limit is a count or a size, never a time: the same document gets the same answer on any machine.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_note_bytes: int = DEFAULT_MAX_NOTE_BYTES  # a decoded journal note; beyond it its HTML is not parsed
    max_elements: int = DEFAULT_MAX_ELEMENTS  # XML elements, or JSON values (objects, arrays, strings, …)
    max_xml_attributes: int = DEFAULT_MAX_XML_ATTRIBUTES  # on one XML element, namespace declarations included
    max_findings: int = DEFAULT_MAX_FINDINGS
    max_findings_per_code: int = DEFAULT_MAX_FINDINGS_PER_CODE


@dataclass(slots=True)
class Parsed:
    """A document read into the JSON shape, with a way back to line:column.

    JSON is located by its own text; another format brings its `locator` (JSON path → line:column) and
    the `findings` reading it gave (e.g. XML element order), which come before the engine's.
    """

    name: str
    data: Any
    text: str
    format: str = "json"
    positions: PositionIndex | None = field(default=None, repr=False)
    locator: Callable[[JsonPath], tuple[int, int] | None] | None = field(default=None, repr=False)
    findings: list[Finding] = field(default_factory=list)

    def locate(self, path: JsonPath) -> tuple[int, int] | None:
        if self.locator is not None:
            return self.locator(path)
        if self.positions is None:
            self.positions = PositionIndex(self.text)
        return self.positions.locate(path)


class Unreadable(Exception):
    """The input could not be read as a document at all; carries the finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.code)
        self.finding = finding


_OS_REASONS = {errno.ENOENT: "@os-not-found", errno.EACCES: "@os-permission", errno.EISDIR: "@os-directory",
               errno.ENOTDIR: "@os-not-found"}


def _os_reason(exc: OSError) -> str:
    return _OS_REASONS.get(exc.errno or 0, exc.strerror or str(exc))


def _fatal(code: str, *, key: str | None = None, line: int | None = None, column: int | None = None,
           **params: Any) -> Unreadable:
    return Unreadable(finding(Severity.FATAL, code, "(document)", (), params, message_key=key,
                              line=line, column=column))


def read_bytes(source: Source, limits: Limits) -> tuple[str, bytes]:
    """The name to report and the raw bytes, refusing what is over the size limit before reading it all."""
    if isinstance(source, os.PathLike):
        name = os.fspath(source)
        try:
            return name, bounded.read_file(name, limits.max_bytes)
        except bounded.TooLarge as exc:
            raise _fatal("too-large", size=exc.size, limit=limits.max_bytes) from None
        except OSError as exc:
            raise _fatal("unreadable", key="unreadable-file", file=name, reason=_os_reason(exc)) from None
    if isinstance(source, str):
        raw = source.encode("utf-8", "surrogatepass")
        return "<text>", raw
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>", bytes(source)
    raise TypeError(f"cannot validate a {type(source).__name__}; give bytes, str or a path")


def decode(raw: bytes) -> str:
    try:
        return bounded.decode_utf8(raw)
    except bounded.NotUtf8 as exc:
        if exc.utf16:
            raise _fatal("encoding", key="encoding-utf16") from None
        raise _fatal("encoding", offset=exc.offset, line=exc.line, column=exc.column) from None


def parse(source: Source, limits: Limits | None = None) -> Parsed:
    """Read and parse a source into the JSON shape; raise Unreadable with a finding otherwise."""
    limits = limits or Limits()
    name, raw = read_bytes(source, limits)
    if len(raw) > limits.max_bytes:
        raise _fatal("too-large", size=len(raw), limit=limits.max_bytes)
    text = decode(raw)
    stripped = text.lstrip()
    if not stripped:
        raise _fatal("json-syntax", key="empty-input")
    if stripped.startswith("<"):
        from kroniker.validators.xmlreader import parse_xml  # lxml and the XSD only when XML arrives

        return parse_xml(name, raw, limits)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fatal("json-syntax", line=exc.lineno, column=exc.colno,
                     detail=json_detail(exc)) from None
    except RecursionError:
        raise _fatal("too-deep", limit=limits.max_depth) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise _fatal("json-syntax", detail=str(exc)[:200]) from None
    check_shape(data, limits)
    if not isinstance(data, dict):
        raise _fatal("json-syntax", key="not-an-object", found=type(data).__name__)
    return Parsed(name, data, text)


def check_shape(data: Any, limits: Limits) -> None:
    """Refuse a document nested deeper or holding more values than the limits allow, before any check walks it."""
    depth, values = _shape(data, limits.max_depth, limits.max_elements)
    if depth > limits.max_depth:
        raise _fatal("too-deep", limit=limits.max_depth)
    if values > limits.max_elements:
        raise _fatal("too-large", key="too-many-elements", limit=limits.max_elements)


def _shape(data: Any, max_depth: int, max_values: int) -> tuple[int, int]:
    """Nesting depth and number of values, level by level without recursion, stopping as soon as either passes
    its limit (so a document of millions of values costs no more than the limit to refuse)."""
    if data.__class__ is not dict and data.__class__ is not list:
        return 0, 1
    level = [data]
    depth = 0
    values = 1
    while level:
        depth += 1
        if depth > max_depth:
            break
        below = []
        for node in level:
            children = node.values() if node.__class__ is dict else node
            values += len(children)
            if values > max_values:
                return depth, values
            for v in children:
                if v.__class__ is dict or v.__class__ is list:
                    below.append(v)
        level = below
    return depth, values
