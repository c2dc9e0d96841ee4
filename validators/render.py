"""Reports for people and machines: text, and FHIR OperationOutcome JSON (spec/findings.md mapping)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kroniker import __version__
from kroniker.validators import messages
from kroniker.validators.findings import Finding, PackageRef, Report, Severity

FINDING_SYSTEM = "urn:kroniker:finding"
EXT_SOURCE = "urn:kroniker:source"
EXT_VALIDATED_AGAINST = "urn:kroniker:validated-against"
EXT_VALIDATOR = "urn:kroniker:validator"


def operation_outcome(report: Report, lang: str = "en") -> dict[str, Any]:
    """One OperationOutcome for one document; an information issue when nothing was found."""
    issues = [_issue(f, lang) for f in report]
    if not issues:
        issues.append({
            "severity": "information",
            "code": "informational",
            "details": {"coding": [{"system": FINDING_SYSTEM, "code": "ok"}]},
            "diagnostics": messages.text("ok", lang),
        })
    oo: dict[str, Any] = {"resourceType": "OperationOutcome"}
    ext = [{"url": EXT_SOURCE, "valueString": report.source_name},
           {"url": EXT_VALIDATOR, "valueString": f"kroniker {__version__}"}]
    # The standard's package first, then its dependencies, each with the hash of the archive it came from.
    ext.extend({"url": EXT_VALIDATED_AGAINST, "valueString": package_line(p)} for p in packages_of(report))
    oo["extension"] = ext
    oo["issue"] = issues
    return oo


def _issue(f: Finding, lang: str) -> dict[str, Any]:
    coding = [{"system": FINDING_SYSTEM, "code": f.code}]
    if f.second:
        coding.append({"system": FINDING_SYSTEM, "code": f.second})
    issue: dict[str, Any] = {
        "severity": f.severity.label,
        "code": f.issue_type,
        "details": {"coding": coding},
        "diagnostics": f.message(lang),
        "expression": [f.location],
    }
    if f.line is not None:
        issue["location"] = [f"{f.line}:{f.column}"]
    return issue


def outcome_bundle(reports: Sequence[Report], lang: str = "en") -> dict[str, Any]:
    """Several documents: a Bundle of type collection with one OperationOutcome per input, in order."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": _url(r.source_name), "resource": operation_outcome(r, lang)} for r in reports],
    }


def _url(name: str) -> str:
    p = Path(name)
    if name.startswith("<") or not p.exists():
        # "<stdin>", a pattern that matched nothing: a URI may not hold <, > or spaces as they are.
        return f"urn:kroniker:input:{quote(name, safe='/:*?')}"
    return p.resolve().as_uri()


def packages_of(report: Report) -> list[PackageRef]:
    """What one document was validated against: its standard's package first, then the dependencies."""
    rest = [p for p in report.packages if report.standard is None or p.name != report.standard.name]
    return ([report.standard] if report.standard else []) + rest


def all_packages(reports: Iterable[Report]) -> list[PackageRef]:
    """Every package any of the reports was validated against, once each, in a stable order."""
    seen: dict[tuple[str, str], PackageRef] = {}
    for r in reports:
        for p in packages_of(r):
            seen.setdefault((p.name, p.version), p)
    return sorted(seen.values(), key=lambda p: (p.name, p.version))


def package_line(p: PackageRef) -> str:
    return f"{p} sha256:{p.sha256}" if p.sha256 else str(p)


def summary(reports: Sequence[Report], lang: str, seconds: float) -> str:
    """The batch's summary line: documents, valid, with errors, with warnings, and the time it took."""
    return messages.text("summary", lang, documents=len(reports), valid=sum(r.valid for r in reports),
                         errors=sum(not r.valid for r in reports),
                         warnings=sum(any(f.severity == Severity.WARNING for f in r.findings) for r in reports),
                         seconds=seconds)


def validated_against(reports: Sequence[Report], lang: str = "en") -> str:
    """The text report's closing block: kroniker's version and every package used, with its sha256."""
    packages = all_packages(reports)
    if not packages:
        return messages.text("validated-against-none", lang, version=__version__)
    width = max(len(str(p)) for p in packages)
    lines = [messages.text("validated-against", lang, version=__version__)]
    lines.extend(f"  {p!s:<{width}}  sha256:{p.sha256 or '?'}" for p in packages)
    return "\n".join(lines)


# Characters XML 1.0 cannot hold at all (C0 controls, lone surrogates from JSON escapes, U+FFFE/U+FFFF);
# ElementTree would write them and leave the report unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def visible(value: str) -> str:
    """The text with every character XML and HTML cannot carry written as its escape (\\x01, \\ud800)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", value)


def finding_line(f: Finding, lang: str) -> str:
    """One finding on one line: severity, line:column, codes and the message (the text report's line)."""
    where = f"{f.line}:{f.column}" if f.line is not None else "-"
    codes = f.code + (f" / {f.second}" if f.second else "")
    label = messages.text(f"sev-{f.severity.label}", lang)
    return f"{label:<11} {where:>9}  [{codes}] {f.message(lang)}"


def counts(report: Report) -> dict[str, int]:
    """errors (fatal included), warnings and information, as the catalogue's texts name them."""
    by = {s: 0 for s in Severity}
    for f in report.findings:
        by[f.severity] += 1
    return {"errors": by[Severity.ERROR] + by[Severity.FATAL], "warnings": by[Severity.WARNING],
            "info": by[Severity.INFORMATION]}


def text(report: Report, lang: str = "en", *, verbose: bool = False) -> str:
    """A readable summary: one line per finding, the worst first, with line:column and rule codes."""
    n = counts(report)
    standard = str(report.standard) if report.standard else messages.text("no-standard", lang)
    lines = [messages.text("text-head", lang, source=report.source_name, standard=standard, **n)]
    for f in report:
        if f.severity == Severity.INFORMATION and not verbose:
            continue
        lines.append("  " + finding_line(f, lang))
        if verbose and f.profile_element:
            lines.append(f"  {'':<11} {'':>9}  {messages.text('profile-element', lang, element=f.profile_element)}")
    if n["info"] and not verbose:
        lines.append("  " + messages.text("info-hidden", lang, count=n["info"]))
    return "\n".join(lines)


def write_utf8(document: str) -> None:
    """Write a document to stdout as UTF-8 (an XML declaration or <meta charset> says so, whatever the terminal)."""
    import sys

    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(document)
        return
    sys.stdout.flush()
    out.write(document.encode("utf-8"))
    out.flush()
