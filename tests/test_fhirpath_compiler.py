"""The FHIRPath compiler agrees with fhirpathpy: every document gives the same findings either way.

The documents are MedCom's examples (read from ../shared) and the invalid documents of the rule catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kroniker.validators import invariants
from kroniker.validators.fhirpath import Env, Unsupported, compile_expression
from kroniker.validators.validate import Validator
from tests.medcom_examples import shared_document_files
from tests.test_rule_catalogue import CASES


def _key(report) -> list[tuple[str, str, str]]:
    return sorted((f.severity.label, f.code, f.location) for f in report.findings)


def _both(validator: Validator, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    compiled = _key(validator.validate(raw))
    with monkeypatch.context() as m:
        m.setattr(invariants, "COMPILE", False)
        interpreted = _key(validator.validate(raw))
    return compiled, interpreted


def test_medcom_examples_agree(validator: Validator, examples_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = shared_document_files(examples_dir)
    assert files
    for path in files:
        compiled, interpreted = _both(validator, path.read_bytes(), monkeypatch)
        assert compiled == interpreted, path.name


@pytest.mark.parametrize(("rule", "build", "mutate", "code", "location", "severity"), CASES)
def test_catalogue_cases_agree(rule: str, build, mutate, code, location, severity,
                               validator: Validator, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = build()
    mutate(doc)
    compiled, interpreted = _both(validator, json.dumps(doc).encode(), monkeypatch)
    assert compiled == interpreted


@pytest.mark.parametrize(("expression", "value", "expected"), [
    ("matches('^[0-9]{11,}$')", "12345678901", [True]),
    ("matches('^[0-9]{11,}$')", "1234", [False]),
    ("a.exists() implies b.exists()", {"a": 1}, [False]),
    ("a.exists() implies b.exists()", {}, [True]),
    ("a.empty() or b = 'x'", {"a": 1, "b": "y"}, [False]),
    ("(a | b).count()", {"a": [1, 2], "b": 2}, [2]),
    ("a.where(s = 'x').exists() xor t.exists()", {"a": [{"s": "x"}], "t": "q"}, [False]),
    ("value.ofType(Quantity).unit.exists()", {"valueQuantity": {"unit": "mg"}}, [True]),
    ("b = 1", {}, []),  # empty propagates
    # intersect: the elements in both collections, duplicates eliminated (FHIRPath N1, 6.5.3)
    ("a.intersect(b)", {"a": [1, 2, 3, 2], "b": [2, 4, 3]}, [2, 3]),
    ("a.intersect(b).empty()", {"a": [1], "b": [2]}, [True]),
    ("a.intersect(b)", {"a": [{"s": "x", "c": "1"}], "b": [{"c": "1", "s": "x"}, {"s": "y"}]},
     [{"s": "x", "c": "1"}]),
])
def test_compiled_expressions(expression: str, value: object, expected: list) -> None:
    env = Env(value, value, value, lambda ref: None, lambda div: True)
    assert compile_expression(expression)(value, env) == expected


def test_what_the_compiler_does_not_cover_is_said() -> None:
    with pytest.raises(Unsupported):
        compile_expression("a.repeat(b)")
