"""kroniker.validators: validate MedCom Shared Notes and diagnosis-card documents against MedCom's
official FHIR packages, offline, with findings a vendor can act on.

    >>> from kroniker.validators import validate
    >>> report = validate(Path("note.json"))
    >>> report.valid, [f.code for f in report.errors()]
"""

from __future__ import annotations

from collections.abc import Iterator

from kroniker.validators.findings import Finding, PackageRef, Report, Severity
from kroniker.validators.source import Limits, Source

__all__ = ["Finding", "Limits", "PackageRef", "Report", "Severity", "iter_findings", "validate"]


def validate(source: Source) -> Report:
    """Validate one document: bytes, a str holding the document's text, or an os.PathLike.

    Never raises on bad input: what cannot be read is itself a finding.
    """
    from kroniker.validators.validate import default_validator

    return default_validator().validate(source)


def iter_findings(source: Source) -> Iterator[Finding]:
    """The findings of one document, lazily."""
    from kroniker.validators.validate import default_validator

    return default_validator().iter_findings(source)
