"""The HTML report: one self-contained page a reviewer can read and forward (no external CSS, scripts or
fonts), each document's findings grouped by resource with the input around each finding.

The input is hostile: every value reaches the page through Jinja2 with autoescaping on, and the page
forbids scripts and loads outright (Content-Security-Policy), so a note that smuggles markup in shows as
text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import jinja2

from kroniker import __version__
from kroniker.validators import messages
from kroniker.validators.excerpt import Snippet
from kroniker.validators.findings import Finding, PackageRef, Report, Severity
from kroniker.validators.render import counts, packages_of, summary, visible

_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]")


@dataclass
class Group:
    """The findings about one resource (one Bundle entry), or about the document as a whole."""

    title: str
    location: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kroniker.validators", "templates"),
        autoescape=True,  # always, whatever the template's name: the page carries the input's text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Characters HTML cannot carry (lone surrogates from JSON escapes) would stop the page being written.
        finalize=lambda value: visible(value) if isinstance(value, str) else value,
    )


def html_report(reports: Sequence[Report], lang: str = "en", *, verbose: bool = False,
                made: datetime | None = None, seconds: float | None = None) -> str:
    """The page for the reports, in their order."""
    made = made or datetime.now().astimezone()
    total = seconds if seconds is not None else sum(r.seconds or 0.0 for r in reports)
    return _environment().get_template("report.html").render(
        lang=lang,
        t=lambda key, **params: messages.text(key, lang, **params),
        version=__version__,
        made=made.replace(microsecond=0).isoformat(),
        summary=summary(reports, lang, total),
        documents=[_document(i, r, lang, verbose) for i, r in enumerate(reports, 1)],
    )


def _document(number: int, report: Report, lang: str, verbose: bool) -> dict[str, Any]:
    n = counts(report)
    status = ("unreadable" if report.worst == Severity.FATAL else "valid" if report.valid else "invalid")
    shown = [f for f in report.positioned() if verbose or f.severity > Severity.INFORMATION]
    return {
        "anchor": f"doc-{number}",
        "source": report.source_name,
        "standard": str(report.standard) if report.standard else messages.text("no-standard", lang),
        "status": status,
        "counts": messages.text("report-counts", lang, **n),
        "packages": [_package(p) for p in packages_of(report)],
        "groups": _groups(report, shown, lang),
        "hidden": 0 if verbose else n["info"],
    }


def _package(p: PackageRef) -> dict[str, str]:
    return {"name": str(p), "sha256": p.sha256 or "?"}


def _groups(report: Report, findings: list[Finding], lang: str) -> list[Group]:
    """Findings by resource: the document as a whole first, then the entries in Bundle order."""
    groups: dict[int | None, Group] = {}
    for f in findings:
        index = _entry_index(f)
        group = groups.get(index)
        if group is None:
            group = groups[index] = _group(report, index, lang)
        group.findings.append(_finding(report, f, lang))
    return [groups[k] for k in sorted(groups, key=lambda k: -1 if k is None else k)]


def _entry_index(f: Finding) -> int | None:
    if len(f.path) >= 2 and f.path[0] == "entry" and isinstance(f.path[1], int):
        return f.path[1]
    m = _ENTRY.match(f.location)
    return int(m[1]) if m else None


def _group(report: Report, index: int | None, lang: str) -> Group:
    if index is None:
        return Group(messages.text("report-whole-document", lang), None)
    label = report.entries[index] if index < len(report.entries) else ""
    return Group(label or f"Bundle.entry[{index}]", f"Bundle.entry[{index}]")


def _finding(report: Report, f: Finding, lang: str) -> dict[str, Any]:
    position = (messages.text("report-position", lang, line=f.line, column=f.column) if f.line is not None
                else messages.text("report-no-position", lang))
    return {
        "severity": f.severity.label,
        "label": messages.text(f"sev-{f.severity.label}", lang),
        "codes": list(f.codes),
        "message": f.message(lang),
        "location": f.location,
        "position": position,
        "profile": f.profile_element,
        "snippet": _snippet(report.snippet(f)),
    }


def _snippet(s: Snippet | None) -> list[dict[str, Any]] | None:
    """The snippet's lines, the focus line split around the column so the page can mark it."""
    if s is None:
        return None
    rows = []
    for line in s.lines:
        row: dict[str, Any] = {"number": line.number, "focus": line.number == s.line,
                               "cut_before": line.cut_before, "cut_after": line.cut_after, "text": line.text}
        if row["focus"]:
            row["before"], row["at"], row["after"] = line.text[:s.mark], line.text[s.mark:s.mark + 1], \
                line.text[s.mark + 1:]
        rows.append(row)
    return rows
