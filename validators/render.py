"""Reports for people and machines: text, and FHIR OperationOutcome JSON (spec/findings.md mapping)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kroniker.validators import messages
from kroniker.validators.findings import Finding, Report, Severity

FINDING_SYSTEM = "urn:kroniker:finding"
EXT_SOURCE = "urn:kroniker:source"
EXT_VALIDATED_AGAINST = "urn:kroniker:validated-against"


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
    ext = [{"url": EXT_SOURCE, "valueString": report.source_name}]
    if report.standard:
        ext.append({"url": EXT_VALIDATED_AGAINST, "valueString": str(report.standard)})
        ext.extend({"url": EXT_VALIDATED_AGAINST, "valueString": f"{p} sha256:{p.sha256}"}
                   for p in report.packages if p != report.standard)
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
        return f"urn:kroniker:input:{name}"
    return p.resolve().as_uri()


def text(report: Report, lang: str = "en", *, verbose: bool = False) -> str:
    """A readable summary: one line per finding, the worst first, with line:column and rule codes."""
    counts = {s: 0 for s in Severity}
    for f in report.findings:
        counts[f.severity] += 1
    standard = str(report.standard) if report.standard else messages.text("no-standard", lang)
    head = messages.text("text-head", lang, source=report.source_name, standard=standard,
                         errors=counts[Severity.ERROR] + counts[Severity.FATAL],
                         warnings=counts[Severity.WARNING], info=counts[Severity.INFORMATION])
    lines = [head]
    for f in report:
        if f.severity == Severity.INFORMATION and not verbose:
            continue
        where = f"{f.line}:{f.column}" if f.line is not None else "-"
        codes = f.code + (f" / {f.second}" if f.second else "")
        label = messages.text(f"sev-{f.severity.label}", lang)
        lines.append(f"  {label:<11} {where:>9}  [{codes}] {f.message(lang)}")
        if verbose and f.profile_element:
            lines.append(f"  {'':<11} {'':>9}  {messages.text('profile-element', lang, element=f.profile_element)}")
    if counts[Severity.INFORMATION] and not verbose:
        lines.append("  " + messages.text("info-hidden", lang, count=counts[Severity.INFORMATION]))
    return "\n".join(lines)
