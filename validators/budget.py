"""Bounds on a validation's work and on the size of its report, counted, never timed: the same document gets the
same answer on any machine, however busy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kroniker.validators.findings import Finding, Severity, finding


def within(findings: Iterable[Finding], limit: int) -> Iterator[Finding]:
    """The findings of a walk, ending the walk after `limit` of them with one error that says so.

    A document that yields this many findings is broken or built to cost: what the rest would say is not worth
    the work, and the document cannot be called valid unchecked.
    """
    for count, found in enumerate(findings):
        if count >= limit:
            yield finding(Severity.ERROR, "too-large", "(document)", (), {"limit": limit},
                          message_key="too-many-findings")
            return
        yield found


def capped(findings: Iterable[Finding], per_code: int) -> list[Finding]:
    """At most `per_code` findings of each code, the worst first; the others of that code counted in one finding
    of the same code and their worst severity (so the verdict and the codes a report carries do not change)."""
    kept: list[Finding] = []
    shown: dict[str, int] = {}
    omitted: dict[str, list[Finding]] = {}
    for f in sorted(findings, key=lambda f: -f.severity):  # stable: otherwise in the order found
        if shown.get(f.code, 0) < per_code:
            shown[f.code] = shown.get(f.code, 0) + 1
            kept.append(f)
        else:
            omitted.setdefault(f.code, []).append(f)
    for code, rest in omitted.items():
        seconds = {f.second for f in rest}
        kept.append(finding(rest[0].severity, code, "(document)", (),
                            {"count": len(rest), "code": code, "shown": shown[code]},
                            second=seconds.pop() if len(seconds) == 1 else None, message_key="findings-omitted"))
    return kept
