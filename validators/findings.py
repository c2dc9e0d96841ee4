"""Findings and reports: what the validator says about a document, in the scheme of spec/findings.md."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kroniker.validators import messages
from kroniker.validators.excerpt import Snippet, snippets

JsonPath = tuple[str | int, ...]


class Severity(enum.IntEnum):
    """FHIR issue severities, ordered so that max() gives the worst."""

    INFORMATION = 0
    WARNING = 1
    ERROR = 2
    FATAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


# The FHIR issue type (OperationOutcome.issue.code) for each primary code; §17 ids and
# invariants fall back on the defaults below.
ISSUE_TYPES: dict[str, str] = {
    "card-min": "required",
    "card-max": "structure",
    "fixed-value": "value",
    "pattern-value": "value",
    "type": "structure",
    "target-profile": "structure",
    "binding": "code-invalid",
    "binding-extensible": "code-invalid",
    "snomed-id": "code-invalid",
    "sks-d-code": "code-invalid",
    "icpc2-code": "code-invalid",
    "sks-d-subdivision": "informational",
    "slice-unmatched": "structure",
    "slice-card-min": "required",
    "slice-card-max": "structure",
    "extension-unknown": "extension",
    "json-syntax": "structure",
    "xml-syntax": "structure",
    "xml-structure": "structure",
    "encoding": "structure",
    "too-large": "too-long",
    "too-deep": "too-long",
    "unknown-resource-type": "structure",
    "unknown-element": "structure",
    "datatype": "value",
    "ref-unresolved": "not-found",
    "entry-unreferenced": "informational",
    "profile-unknown": "not-found",
    "profile-version": "informational",
    "package-missing": "not-found",
    "unreadable": "exception",
    "NOTES-OBS-NOTE-ACTIVE": "security",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the validator found. Immutable; the message is rendered on demand."""

    severity: Severity
    code: str
    location: str
    path: JsonPath = ()
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    second: str | None = None
    profile_element: str | None = None
    message_key: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def issue_type(self) -> str:
        if self.code.startswith("invariant:"):
            return "invariant"
        return ISSUE_TYPES.get(self.code, "business-rule" if self.code.isupper() or "-" in self.code else "processing")

    @property
    def rule(self) -> str:
        """The §17 rule id when there is one (primary or second code), else the primary code."""
        if self.second:
            return self.second
        return self.code

    @property
    def codes(self) -> tuple[str, ...]:
        return (self.code, self.second) if self.second else (self.code,)

    def message(self, lang: str = "en") -> str:
        return messages.render(self.message_key or self.code, self.params, lang, location=self.location)

    def with_position(self, line: int | None, column: int | None) -> Finding:
        return replace(self, line=line, column=column)

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        d: dict[str, Any] = {
            "severity": self.severity.label,
            "code": self.code,
            "location": self.location,
            "message": self.message(lang),
        }
        if self.second:
            d["second"] = self.second
        if self.line is not None:
            d["line"], d["column"] = self.line, self.column
        if self.profile_element:
            d["profile"] = self.profile_element
        return d


@dataclass(frozen=True, slots=True)
class PackageRef:
    name: str
    version: str
    sha256: str | None = None

    def __str__(self) -> str:
        return f"{self.name}#{self.version}"


@dataclass(slots=True)
class Report:
    """The findings for one document plus what it was validated against."""

    findings: list[Finding]
    source_name: str = "<document>"
    standard: PackageRef | None = None
    packages: tuple[PackageRef, ...] = ()
    # "Composition/3f2a…" for each Bundle entry, in order: reports group findings by resource.
    entries: tuple[str, ...] = ()
    seconds: float | None = field(default=None, compare=False)
    _locate: Callable[[JsonPath], tuple[int, int] | None] | None = field(default=None, repr=False)
    _positioned: bool = field(default=False, repr=False)
    # The input's text while it is at hand; detached() keeps only the snippets around the findings.
    _text: str | None = field(default=None, repr=False, compare=False)
    _snippets: dict[tuple[int, int], Snippet] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=_finding_order)

    @property
    def valid(self) -> bool:
        return not any(f.severity >= Severity.ERROR for f in self.findings)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def errors(self) -> list[Finding]:
        return [f for f in self.positioned() if f.severity >= Severity.ERROR]

    def warnings(self) -> list[Finding]:
        return [f for f in self.positioned() if f.severity == Severity.WARNING]

    def positioned(self) -> list[Finding]:
        """Findings with line:column filled in (computed once, only when asked for)."""
        if not self._positioned:
            if self._locate is not None:
                out = []
                for f in self.findings:
                    if f.line is None and f.path:
                        pos = self._locate(f.path)
                        if pos:
                            f = f.with_position(*pos)
                    out.append(f)
                self.findings = out
            self._positioned = True
        return self.findings

    def snippet(self, finding: Finding) -> Snippet | None:
        """The input around the finding's line:column, when the input had positions and is at hand."""
        if finding.line is None or finding.column is None:
            return None
        if self._snippets is None:
            self._snippets = self._cut_snippets()
        return self._snippets.get((finding.line, finding.column))

    def _cut_snippets(self) -> dict[tuple[int, int], Snippet]:
        if self._text is None:
            return {}
        return snippets(self._text, ((f.line, f.column) for f in self.positioned()
                                     if f.line is not None and f.column is not None))

    def detached(self) -> Report:
        """This report made small and picklable: positions and snippets computed, the input and the
        locator (which holds the parsed document) let go. For reports sent between processes."""
        self.positioned()
        if self._snippets is None:
            self._snippets = self._cut_snippets()
        self._text = None
        self._locate = None
        return self

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.positioned())

    def __len__(self) -> int:
        return len(self.findings)

    def rules(self, minimum: Severity = Severity.ERROR) -> set[str]:
        """Every code (primary and second) of the findings at or above a severity."""
        out: set[str] = set()
        for f in self.findings:
            if f.severity >= minimum:
                out.update(f.codes)
        return out


def _finding_order(f: Finding) -> tuple[Any, ...]:
    return (-int(f.severity), _path_key(f.path), f.code, f.location)


def _path_key(path: JsonPath) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in path)


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """Drop repeats: the same rule at the same place is reported once.

    A resource checked against several profiles (its own meta.profile, the slice that
    holds it, the target profile of a reference to it) meets the same base rules more than
    once; and a document rule may restate a constraint a profile already carries.
    """
    seen: dict[tuple[str, str, str], int] = {}
    out: list[Finding] = []
    for f in findings:
        keys = [(f.location, c, _detail(f)) for c in f.codes]
        earlier = next((seen[k] for k in keys if k in seen), None)
        if earlier is not None:
            # The worse of the two stays: a code checked under a required binding (an error) and the
            # same code checked as a plain Coding (a warning) are one finding, and it is the error.
            if f.severity > out[earlier].severity:
                out[earlier] = f
            continue
        for k in keys:
            seen[k] = len(out)
        out.append(f)
    return out


def _detail(f: Finding) -> str:
    # Invariants and slices are distinct rules even at one location.
    return str(f.params.get("key") or f.params.get("slice") or f.params.get("profile_url") or "")
