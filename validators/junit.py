"""JUnit XML for a vendor's CI: one testcase per document, one failure per error, warnings in system-out.

The shape is the one Jenkins, GitLab, GitHub's test reporters and Azure DevOps read:

    <testsuites name tests failures errors time>
      <testsuite name tests failures errors skipped time timestamp>
        <properties>  kroniker.version, and package:<name>#<version> = sha256:<hash> for every package used
        <testcase name=<input> classname=<standard's package> time>
          <properties>  source, standard
          <error>       per fatal finding (the input could not be read: the test could not run)
          <failure>     per error-level finding
          <system-out>  the warnings (and with --verbose the information), one per line

`failures` and `errors` count documents, as JUnit counts tests, not the elements inside them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime

from kroniker import __version__
from kroniker.validators import messages
from kroniker.validators.findings import Finding, Report, Severity
from kroniker.validators.render import all_packages, finding_line, package_line, visible

SUITE_NAME = "kroniker validate"


def junit(reports: Sequence[Report], lang: str = "en", *, verbose: bool = False,
          started: datetime | None = None, seconds: float | None = None) -> str:
    """The JUnit XML document for the reports, in their order; `seconds` is the batch's wall-clock time."""
    started = started or datetime.now()
    total = seconds if seconds is not None else sum(r.seconds or 0.0 for r in reports)
    tally = _tally(reports)
    root = ET.Element("testsuites", _attrs(name=SUITE_NAME, time=_secs(total), **tally))
    suite = ET.SubElement(root, "testsuite", _attrs(
        name=SUITE_NAME, skipped="0", time=_secs(total),
        timestamp=started.replace(microsecond=0, tzinfo=None).isoformat(), **tally))
    props = ET.SubElement(suite, "properties")
    _prop(props, "kroniker.version", __version__)
    for p in all_packages(reports):
        _prop(props, f"package:{p}", f"sha256:{p.sha256 or '?'}")
    for report in reports:
        _testcase(suite, report, lang, verbose)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _tally(reports: Sequence[Report]) -> dict[str, str]:
    errors = sum(r.worst == Severity.FATAL for r in reports)
    failures = sum(r.worst == Severity.ERROR for r in reports)
    return {"tests": str(len(reports)), "failures": str(failures), "errors": str(errors)}


def _testcase(suite: ET.Element, report: Report, lang: str, verbose: bool) -> None:
    classname = report.standard.name if report.standard else "kroniker"
    case = ET.SubElement(suite, "testcase", _attrs(name=report.source_name, classname=classname,
                                                   time=_secs(report.seconds or 0.0)))
    props = ET.SubElement(case, "properties")
    _prop(props, "source", report.source_name)
    if report.standard:
        _prop(props, "standard", package_line(report.standard))
    findings = report.positioned()
    for f in findings:
        if f.severity >= Severity.ERROR:
            tag = "error" if f.severity == Severity.FATAL else "failure"
            el = ET.SubElement(case, tag, _attrs(message=f.message(lang), type=f.code))
            el.text = visible(_detail(f, lang))
    shown = Severity.INFORMATION if verbose else Severity.WARNING
    out = [finding_line(f, lang) for f in findings if shown <= f.severity < Severity.ERROR]
    if out:
        ET.SubElement(case, "system-out").text = visible("\n".join(out))


def _detail(f: Finding, lang: str) -> str:
    lines = [finding_line(f, lang)]
    if f.profile_element:
        lines.append(messages.text("profile-element", lang, element=f.profile_element))
    return "\n".join(lines)


def _prop(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "property", _attrs(name=name, value=value))


def _attrs(**values: str) -> dict[str, str]:
    return {k: visible(v) for k, v in values.items()}


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}"
