"""Every document Bundle among MedCom's examples validates with no errors, except where
../shared/medcom-examples/README.md lists known error-level deviations for that file: there exactly
those error-level rules are reported (MedCom's own examples break some prose rules, e.g. COMP-TITLE).

The fixtures are MedCom's published examples (CC0), read from ../shared; nothing is copied here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kroniker.validators import Severity
from kroniker.validators.validate import Validator
from tests.conftest import SHARED
from tests.medcom_examples import (
    Expectation,
    package_document_examples,
    readme_expectations,
    shared_document_files,
)

EXAMPLES = SHARED / "medcom-examples"
PACKAGES = SHARED / "fhir-packages"


def _shared_files() -> list[Path]:
    return shared_document_files(EXAMPLES) if EXAMPLES.exists() else []


def _package_examples() -> list:
    return package_document_examples(PACKAGES) if PACKAGES.exists() else []


def _rules(report, minimum: Severity, maximum: Severity = Severity.FATAL) -> set[str]:
    return {f.rule for f in report.findings if minimum <= f.severity <= maximum}


@pytest.fixture(scope="module")
def expectations(examples_dir: Path) -> dict[str, Expectation]:
    return readme_expectations(examples_dir)


def test_every_example_has_a_readme_row(examples_dir: Path, package_dir: Path,
                                        expectations: dict[str, Expectation]) -> None:
    documents = {p.relative_to(examples_dir).as_posix() for p in shared_document_files(examples_dir)}
    assert documents, "no examples found"
    assert documents <= set(expectations), f"examples without a README row: {sorted(documents - set(expectations))}"
    # Notes 2, ConditionList 7 and Document 1 IG examples are document Bundles in the packages.
    assert len(package_document_examples(package_dir)) == 10


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: p.name[:60])
def test_shared_example(path: Path, validator: Validator, expectations: dict[str, Expectation]) -> None:
    rel = path.relative_to(EXAMPLES).as_posix()
    expected = expectations[rel]
    report = validator.validate(path)
    errors = _rules(report, Severity.ERROR)
    assert errors == expected.errors, (
        f"{rel}: error-level rules {sorted(errors)}; MedCom's README lists {sorted(expected.errors) or 'none'}\n"
        + "\n".join(f.message("en") for f in report.errors()))
    # The warnings MedCom's README knows of are reported too (as warnings, not errors).
    warnings = _rules(report, Severity.WARNING, Severity.WARNING)
    assert expected.warnings <= warnings, f"{rel}: missing warnings {sorted(expected.warnings - warnings)}"


@pytest.mark.parametrize("example", _package_examples(), ids=lambda e: f"{e.package}:{e.member.rsplit('/', 1)[-1]}")
def test_package_example(example, validator: Validator, expectations: dict[str, Expectation]) -> None:
    # The packages' own examples are the IG examples in medcom-examples/ (README: "identical to the one
    # inside the IG package.tgz"); they carry the same known deviations, matched by Bundle id.
    ig = {"medcom.fhir.dk.notes#1.0.0": "notes/notes-ig-1.0.0__",
          "medcom.fhir.dk.conditionlist#1.0.1": "conditionlist/conditionlist-ig-1.0.1__",
          "medcom.fhir.dk.document#2.0.2": "document/document-ig-2.0.2__"}[example.package]
    rows = [k for k in expectations if k.startswith(ig) and k.endswith(f"Bundle-{example.bundle_id}.json")]
    assert len(rows) == 1, f"no README row for {example.package} {example.member}"
    expected = expectations[rows[0]]
    report = validator.validate(example.data)
    assert report.standard is not None and str(report.standard) == example.package
    assert _rules(report, Severity.ERROR) == expected.errors
