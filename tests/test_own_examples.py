"""The documents of our own making in examples/ (the README's main job validates them) stay valid and stay
what tests/builders.py builds."""

from __future__ import annotations

import json

import pytest

from kroniker.validators import Severity
from kroniker.validators.validate import Validator
from tests.builders import EXAMPLES
from tests.conftest import ROOT


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_file_is_what_the_builder_makes(name: str) -> None:
    on_disk = json.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    assert on_disk == EXAMPLES[name](), f"examples/{name} is stale: run python tests/builders.py"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_is_valid(name: str, validator: Validator) -> None:
    report = validator.validate(ROOT / "examples" / name)
    assert report.valid, [f.message("en") for f in report.errors()]
    assert report.standard is not None
    assert report.standard.name == {"shared-note-lbp-annual-control.json": "medcom.fhir.dk.notes",
                                    "diagnosis-card-lbp.json": "medcom.fhir.dk.conditionlist"}[name]
    # Our own documents keep MedCom's prose rules too: nothing above information.
    assert {f.code for f in report.findings if f.severity >= Severity.WARNING} == set()
