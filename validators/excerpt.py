"""Snippets of the input around a finding's line:column, for reports a reviewer reads (the HTML report)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Lines shown either side of the finding's line.
CONTEXT = 2
# Characters shown before and after the column: a minified document is one line of megabytes, and a
# snippet must stay a snippet.
BEFORE, AFTER = 60, 100


@dataclass(frozen=True, slots=True)
class SnippetLine:
    number: int
    text: str
    cut_before: bool  # the line goes on to the left of the window
    cut_after: bool   # and to the right


@dataclass(frozen=True, slots=True)
class Snippet:
    """The input's lines around `line`, each cut to the same window of columns around `column`."""

    line: int
    column: int
    start: int  # 0-based index in each line of the window's first character
    lines: tuple[SnippetLine, ...]

    @property
    def mark(self) -> int:
        """Where the column falls in the focus line's text (0-based)."""
        return max(self.column - 1 - self.start, 0)


def split_lines(text: str) -> list[str]:
    # Only "\n" ends a line: that is how positions are counted (str.splitlines would also split at
    # \u2028, form feeds and the like, and the numbers would no longer match).
    return [line.removesuffix("\r") for line in text.split("\n")]


def snippet(lines: list[str], line: int, column: int, context: int = CONTEXT) -> Snippet | None:
    """The snippet around 1-based line:column of the input split into `lines`; None past its end."""
    if not 1 <= line <= len(lines):
        return None
    start = max(column - 1 - BEFORE, 0)
    end = max(column - 1, 0) + AFTER
    shown = []
    for number in range(max(line - context, 1), min(line + context, len(lines)) + 1):
        text = lines[number - 1]
        shown.append(SnippetLine(number, text[start:end], bool(text[:start]), len(text) > end))
    return Snippet(line, column, start, tuple(shown))


def snippets(text: str, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Snippet]:
    """Snippets for every line:column at once, splitting the text only once."""
    lines = split_lines(text)
    out: dict[tuple[int, int], Snippet] = {}
    for pos in positions:
        if pos not in out:
            found = snippet(lines, *pos)
            if found is not None:
                out[pos] = found
    return out
