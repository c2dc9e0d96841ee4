"""Line:column of any element of a JSON text, found by path; computed only when a finding needs one."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable

JsonPath = tuple[str | int, ...]

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear on megabyte strings
_SCALAR = re.compile(r"[^,\]\}\s]+")


class PositionIndex:
    """Maps JSON paths to offsets by one pass over the text.

    Object members are located at their key (where a reader looks for `"title": ...`),
    array items at their first character. A path that does not exist (a missing element)
    is located at its nearest existing ancestor.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._offsets: dict[JsonPath, int] | None = None
        self._line_starts: list[int] | None = None

    def locate(self, path: Iterable[str | int]) -> tuple[int, int] | None:
        if self._offsets is None:
            self._offsets = _scan(self._text)
        p = tuple(path)
        while True:
            off = self._offsets.get(p)
            if off is not None:
                return self._line_col(off)
            if not p:
                return None
            p = p[:-1]

    def _line_col(self, offset: int) -> tuple[int, int]:
        if self._line_starts is None:
            starts = [0]
            starts.extend(m.end() for m in re.finditer("\n", self._text))
            self._line_starts = starts
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1


def _skip_ws(text: str, pos: int) -> int:
    """The offset after the white space at `pos` (the pattern matches the empty string too)."""
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _scan(text: str) -> dict[JsonPath, int]:
    """Offsets of every value in a (syntactically valid) JSON text, without recursion."""
    out: dict[JsonPath, int] = {}
    pos = _skip_ws(text, 0)
    out[()] = pos
    # Stack of (path, kind, next index); kind is "{" or "[".
    stack: list[list] = []
    path: JsonPath = ()
    expect_value = True
    n = len(text)
    while pos < n:
        pos = _skip_ws(text, pos)
        if pos >= n:
            break
        ch = text[pos]
        if expect_value:
            if ch == "{":
                stack.append([path, "{", 0])
                pos += 1
                pos = _skip_ws(text, pos)
                if pos < n and text[pos] == "}":
                    stack.pop()
                    pos += 1
                    expect_value = False
                    continue
                pos = _read_key(text, pos, stack, out)
                path = stack[-1][3]
                continue
            if ch == "[":
                stack.append([path, "[", 0])
                pos += 1
                pos = _skip_ws(text, pos)
                if pos < n and text[pos] == "]":
                    stack.pop()
                    pos += 1
                    expect_value = False
                    continue
                path = (*stack[-1][0], 0)
                out[path] = pos
                continue
            if ch == '"':
                m = _STRING.match(text, pos)
                pos = m.end() if m else n
            else:
                m = _SCALAR.match(text, pos)
                pos = m.end() if m else pos + 1
            expect_value = False
            continue
        # After a value: a comma or the end of a container.
        if not stack:
            break
        top = stack[-1]
        if ch == ",":
            pos += 1
            pos = _skip_ws(text, pos)
            if top[1] == "{":
                pos = _read_key(text, pos, stack, out)
                path = stack[-1][3]
            else:
                top[2] += 1
                path = (*top[0], top[2])
                out[path] = pos
            expect_value = True
            continue
        if ch in "}]":
            stack.pop()
            pos += 1
            continue
        pos += 1
    return out


def _read_key(text: str, pos: int, stack: list[list], out: dict[JsonPath, int]) -> int:
    m = _STRING.match(text, pos)
    if not m:
        return len(text)
    key = json.loads(m.group(0))
    top = stack[-1]
    member = (*top[0], key)
    if len(top) > 3:
        top[3] = member
    else:
        top.append(member)
    out[member] = pos
    pos = _skip_ws(text, m.end())
    if pos < len(text) and text[pos] == ":":
        pos += 1
    return pos
