"""Reading a register file (or an export, or a clinic's delta) strictly and within explicit limits.

A register is evidence a DPO shows an authority, so what is read must be exactly what the file says: a key given
twice (which JSON parsers silently resolve to the last), a lone surrogate escape (`\\ud800`, text no UTF-8 database
can store) or a NUL character (PostgreSQL refuses it in text) is refused, never quietly changed. Work is bounded by
the input: at most `max_bytes` are read (`KRONIKER_DPIA_MAX_BYTES`), nesting stops at `max_depth`
(`KRONIKER_DPIA_MAX_DEPTH`), and every problem is a finding in the validators' shape (stable code, JSON pointer,
Danish and English message), raised together as a `RegisterError` before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kroniker.dpia.model import RegisterError, pointer
from kroniker.validators import bounded
from kroniker.validators.bounded import json_detail
from kroniker.validators.findings import Finding, Severity
from kroniker.validators.findings import finding as make_finding

DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # the shipped template is 59 KB; an export of it about 62 KB
DEFAULT_MAX_DEPTH = 64  # the register nests 8 levels, an export 9; room for own `x-…` fields
ENV_MAX_BYTES, ENV_MAX_DEPTH = "KRONIKER_DPIA_MAX_BYTES", "KRONIKER_DPIA_MAX_DEPTH"

# The input codes and their severities (checks.CODES takes them over, docs/dpia.md lists them): fatal where nothing
# could be read at all, error where the file was read but says something that cannot be stored as it stands.
CODES: dict[str, Severity] = {
    "DPIA-TOO-LARGE": Severity.FATAL,
    "DPIA-TOO-DEEP": Severity.FATAL,
    "DPIA-ENCODING": Severity.FATAL,
    "DPIA-JSON-SYNTAX": Severity.FATAL,
    "DPIA-KEY-DUPLICATE": Severity.ERROR,
    "DPIA-TEXT-SURROGATE": Severity.ERROR,
    "DPIA-TEXT-NUL": Severity.ERROR,
    "DPIA-TIME-INVALID": Severity.ERROR,
    "DPIA-ADOPTION-MISSING": Severity.ERROR,
    "DPIA-ADOPTION-UNEXPECTED": Severity.ERROR,
    "DPIA-CLINIC-BARE": Severity.ERROR,
}

_NUMBER = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a file is read and how deep it may nest."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits from $KRONIKER_DPIA_MAX_BYTES and $KRONIKER_DPIA_MAX_DEPTH; ValueError (naming the variable)
        for a value that is not a positive whole number, rather than silently using the default."""
        env = os.environ if environ is None else environ

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not _NUMBER.fullmatch(raw) or int(raw) < 1:
                raise ValueError(name, raw)
            return int(raw)

        return cls(number(ENV_MAX_BYTES, DEFAULT_MAX_BYTES), number(ENV_MAX_DEPTH, DEFAULT_MAX_DEPTH))


def finding(code: str, path: tuple[str | int, ...] = (), *, text: str | None = None, line: int | None = None,
            column: int | None = None, **params: Any) -> Finding:
    """A finding of this module; `text` names a catalogue text other than the code's own."""
    return make_finding(CODES[code], code, pointer(path) or "/", path, params=params, message_key=text, line=line,
                        column=column)


def read_file(name: str | Path, limits: Limits, source: str | None = None) -> bytes:
    """The bytes of a file ('-' for standard input), never more than the limit: a larger file is refused before it
    is read, and a stream is read only one byte past the limit."""
    source = source or ("<stdin>" if str(name) == "-" else str(name))
    try:
        if str(name) == "-":
            return bounded.read_stream(sys.stdin.buffer, limits.max_bytes)
        return bounded.read_file(name, limits.max_bytes)
    except bounded.TooLarge:
        raise RegisterError(source, [finding("DPIA-TOO-LARGE", limit=limits.max_bytes)]) from None


def parse(data: str | bytes, source: str = "<input>", limits: Limits | None = None) -> Any:
    """JSON text → Python, or a RegisterError with every finding: size, encoding, syntax, depth, keys given twice,
    lone surrogates and NUL characters in any key or value."""
    limits = limits or Limits()
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > limits.max_bytes:
        raise RegisterError(source, [finding("DPIA-TOO-LARGE", limit=limits.max_bytes)])
    text = data if isinstance(data, str) else _decode(data, source)
    duplicates: dict[int, list[str]] = {}
    try:
        document = json.loads(text, object_pairs_hook=_pairs(duplicates), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise RegisterError(source, [finding("DPIA-JSON-SYNTAX", text="dpia-json-syntax-at", line=exc.lineno,
                                             column=exc.colno, at_line=exc.lineno, at_column=exc.colno,
                                             detail=json_detail(exc))]) from None
    except RecursionError:
        # json's C scanner recurses once per level; about 1,000 levels end here, fewer in the walk below.
        raise RegisterError(source, [finding("DPIA-TOO-DEEP", limit=limits.max_depth)]) from None
    except ValueError as exc:  # NaN and Infinity (not JSON), integers longer than Python converts
        raise RegisterError(source, [finding("DPIA-JSON-SYNTAX", detail=str(exc)[:200])]) from None
    problems = walk(document, limits.max_depth, duplicates)
    if problems:
        raise RegisterError(source, problems)
    return document


def _decode(data: bytes, source: str) -> str:
    try:
        return bounded.decode_utf8(data)
    except bounded.NotUtf8 as exc:
        if exc.utf16:
            raise RegisterError(source, [finding("DPIA-ENCODING", text="dpia-encoding-utf16")]) from None
        raise RegisterError(source, [finding("DPIA-ENCODING", line=exc.line, column=exc.column, offset=exc.offset,
                                             at_line=exc.line, at_column=exc.column)]) from None


def _pairs(duplicates: dict[int, list[str]]) -> Any:
    """An object_pairs_hook that builds the dict and notes the keys it was given more than once (by the dict's
    identity: the walk that follows knows where in the document the dict is)."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            twice = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
            duplicates[id(obj)] = list(dict.fromkeys(twice))
        return obj
    return hook


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def walk(document: Any, max_depth: int, duplicates: Mapping[int, list[str]] | None = None) -> list[Finding]:
    """Findings for a parsed document, in document order, without recursion: nesting beyond max_depth (once), keys
    given twice, and text that cannot be stored (lone surrogates, NUL) in keys and values."""
    duplicates = duplicates or {}
    found: list[Finding] = []
    too_deep = False
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if node.__class__ is dict or node.__class__ is list:
            if len(path) >= max_depth:
                if not too_deep:
                    found.append(finding("DPIA-TOO-DEEP", path, limit=max_depth))
                    too_deep = True
                continue
            if node.__class__ is dict:
                found += [finding("DPIA-KEY-DUPLICATE", (*path, key), key=key) for key in duplicates.get(id(node), ())]
                for key in node:
                    found += text_findings(key, (*path, key))
                stack += [(value, (*path, key)) for key, value in reversed(node.items())]
            else:
                stack += [(value, (*path, i)) for i, value in reversed(list(enumerate(node)))]
        elif node.__class__ is str:
            found += text_findings(node, path)
    return found


def text_findings(value: str, path: tuple[str | int, ...] = ()) -> list[Finding]:
    """A lone surrogate or a NUL in a text: neither can be stored as UTF-8 text in both databases."""
    if value.isascii():
        return [finding("DPIA-TEXT-NUL", path)] if "\x00" in value else []
    out = []
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        out.append(finding("DPIA-TEXT-SURROGATE", path, char=f"\\u{ord(value[exc.start]):04x}"))
    if "\x00" in value:
        out.append(finding("DPIA-TEXT-NUL", path))
    return out
