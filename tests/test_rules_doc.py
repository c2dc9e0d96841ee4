"""docs/rules.md: every finding code, its kind, severity and emitter, generated from the code and kept current.

The document is regenerated and compared; the codes it lists are held against the message tables
(validators/messages/{da,en}.json), spec/findings.md's scheme, and what the validator really reports for
broken documents: no code is emitted without a message, and no code a table or the spec names goes unemitted.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kroniker.validators import messages, rulesdoc
from kroniker.validators.findings import ISSUE_TYPES
from kroniker.validators.validate import Validator
from tests.builders import diagnosis_card, shared_note
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]
RULES_MD = ROOT / "docs" / "rules.md"
# How a finding code is written (spec/findings.md): lower-case words, a §17 rule id, or an invariant's key.
CODE = re.compile(r"invariant:[a-z0-9<>-]+|[a-z][a-z0-9]*(-[a-z0-9]+)*|[A-Z][A-Z0-9]*(-[A-Z0-9]+)+")
INVARIANT_FAMILY = "invariant:<key>"


UPDATE = "run python -m kroniker.validators.rulesdoc --write docs/rules.md"


def test_docs_rules_md_is_what_the_code_says() -> None:
    assert RULES_MD.is_file(), f"docs/rules.md is missing: {UPDATE}"
    assert RULES_MD.read_text(encoding="utf-8") == rulesdoc.markdown(), f"docs/rules.md is out of date: {UPDATE}"


def test_the_check_command_says_how_to_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "rules.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert rulesdoc.main(["--check", str(stale)]) == 1
    assert f"--write {stale}" in capsys.readouterr().err
    assert rulesdoc.main(["--write", str(stale)]) == 0
    assert rulesdoc.main(["--check", str(stale)]) == 0


def _message_keys(site: rulesdoc.Site) -> Iterator[str]:
    """The catalogue keys a finding's message is looked up by (its message key, else its code)."""
    key = site.message_key
    if key.values:
        yield from key.values
    elif key.unknown is None and key.param is None:
        yield from (c for c in site.code.values if c != "*")


def _has_text(key: str, catalogue: dict[str, str]) -> bool:
    if "<" in key:  # a key completed at run time, e.g. fullurl-<problem>: some key of that form has a text
        rx = re.compile(re.sub(r"<[^>]*>", "[a-z0-9-]+", re.escape(key).replace("\\<", "<").replace("\\>", ">")))
        return any(rx.fullmatch(k) for k in catalogue)
    if key.startswith("invariant:"):  # the profile's own words stand in (messages.render)
        return key in catalogue or {"invariant", "invariant-value"} <= catalogue.keys()
    return key in catalogue


@pytest.mark.parametrize("lang", messages.LANGUAGES)
def test_every_emitted_code_has_a_message(lang: str) -> None:
    catalogue = messages.catalogue(lang)
    missing = sorted({f"{k} ({s.function.file}:{s.function.qualname})" for s in rulesdoc.scan()
                      for k in _message_keys(s) if not _has_text(k, catalogue)})
    assert not missing, f"no {lang} text for: {missing}"


@pytest.mark.parametrize("lang", messages.LANGUAGES)
def test_every_code_in_the_message_tables_is_emitted(lang: str) -> None:
    emitted = rulesdoc.codes_emitted()
    # Upper-case keys are §17 rule ids (DPIA-… are the DPIA register's, docs/dpia.md); lower-case codes are
    # those the OperationOutcome mapping knows (findings.ISSUE_TYPES), the rest of the keys are message keys.
    rule_ids = {k for k in messages.catalogue(lang) if k[:1].isupper() and not k.startswith("DPIA-")}
    assert rule_ids, "the catalogue has no rule ids at all: the test would prove nothing"
    assert sorted(rule_ids - emitted) == []
    invariants = {k for k in messages.catalogue(lang) if k.startswith("invariant:")}
    assert not invariants or INVARIANT_FAMILY in emitted


def test_every_code_the_issue_type_table_maps_is_emitted_and_every_emitted_code_is_mapped() -> None:
    emitted = rulesdoc.codes_emitted()
    assert sorted(set(ISSUE_TYPES) - emitted) == []
    lower = {c for c in emitted if c[:1].islower() and not c.startswith("invariant:")}
    assert sorted(lower - set(ISSUE_TYPES)) == []


def test_every_code_findings_md_names_is_emitted() -> None:
    text = shared_path("spec", "findings.md").read_text(encoding="utf-8")
    section = text.split("## Codes", 1)[1].split("\n## ", 1)[0]
    named = {t for t in re.findall(r"`([^`]+)`", section) if CODE.fullmatch(t)}
    assert {"card-min", "COMP-TITLE", "ref-unresolved", "DOC-REF-RESOLVE"} <= named  # the section was read
    emitted = rulesdoc.codes_emitted()
    missing = sorted(c for c in named if c not in emitted and not (c.startswith("invariant:")
                                                                   and INVARIANT_FAMILY in emitted))
    assert missing == []


def test_every_row_names_a_kind_a_severity_and_an_emitter() -> None:
    kinds = {rulesdoc.PROFILE, rulesdoc.DOCUMENT, rulesdoc.PROSE, rulesdoc.INPUT, rulesdoc.SECOND, rulesdoc.PACKAGE}
    for row in rulesdoc.rows():
        assert row.kind in kinds
        assert row.severities and row.emitter, row
        assert CODE.fullmatch(row.code) or row.code == "*", row.code
        file = row.emitter.split(":", 1)[0].split(" ", 1)[0]
        assert (ROOT / file).is_file(), row.emitter


def test_the_walker_emits_no_finding_itself() -> None:
    assert not [r for r in rulesdoc.rows() if r.emitter.startswith("validators/engine.py")]
    cardinality = {r.emitter for r in rulesdoc.rows() if r.code in ("card-min", "card-max")}
    assert cardinality and all(e.startswith("validators/constraints.py:") for e in cardinality)


# -- what the validator really reports is in the document -----------------------------------------------------

def _broken_documents() -> Iterator[tuple[str, bytes | dict[str, object]]]:
    note, card = shared_note(), diagnosis_card()
    yield "valid note", note
    yield "valid card", card
    d = copy.deepcopy(note)
    del d["entry"][0]["resource"]["title"]
    d["entry"][0]["resource"]["status"] = "draft"
    d["entry"][0]["resource"]["unknownThing"] = 1
    d["entry"][2]["resource"]["identifier"][0]["value"] = "3113"
    yield "broken note", d
    d = copy.deepcopy(card)
    d["type"] = "collection"
    d["entry"][1]["fullUrl"] = d["entry"][2]["fullUrl"]
    d["entry"][0]["resource"]["subject"] = {"reference": "Patient/nowhere"}
    d["entry"][3]["resource"]["note"] = [{"text": "Tillægstekst"}]
    yield "broken card", d
    yield "not JSON", b"{"
    yield "not XML", b"<Bundle xmlns='http://hl7.org/fhir'><type value='document'>"
    yield "no resourceType", b"{}"


def test_every_code_the_validator_reports_for_broken_documents_is_listed(validator: Validator) -> None:
    emitted = rulesdoc.codes_emitted()
    seen: set[str] = set()
    for name, doc in _broken_documents():
        source = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        report = validator.validate(source, name=name)
        for f in report:
            seen.add(f.code)
            if f.second:
                seen.add(f.second)
    assert len(seen) >= 10, seen  # the documents are broken in many ways
    unlisted = sorted(c for c in seen if c not in emitted and not (c.startswith("invariant:")
                                                                   and INVARIANT_FAMILY in emitted))
    assert unlisted == []


# -- the scan itself -------------------------------------------------------------------------------------------

@pytest.fixture
def scanned_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module of our own, scanned with kroniker's."""
    path = tmp_path / "extra.py"
    kroniker_sources = rulesdoc._sources

    def sources() -> Iterator[tuple[str, str, Path]]:
        yield from kroniker_sources()
        yield "kroniker.validators.extra", "validators/extra.py", path

    monkeypatch.setattr(rulesdoc, "_sources", sources)
    rulesdoc.scan.cache_clear()
    yield path
    rulesdoc.scan.cache_clear()


def test_a_code_passed_through_a_wrapper_is_found_where_it_is_given(scanned_module: Path) -> None:
    scanned_module.write_text(
        "from kroniker.validators.findings import Severity, finding\n"
        "def _warn(code, where, key=None):\n"
        "    return finding(Severity.WARNING, code, where, message_key=key)\n"
        "def check(x):\n"
        "    yield _warn('my-rule', 'Bundle', key='my-text')\n"
        "    level = Severity.ERROR if x else Severity.INFORMATION\n"
        "    yield finding(level, 'MY-RULE-ID', 'Bundle', second='OTHER-ID')\n", encoding="utf-8")
    rows = {(r.code, r.kind, r.emitter): r for r in rulesdoc.rows() if "second-codes.json" not in r.emitter}
    mine = rows[("my-rule", rulesdoc.INPUT, "validators/extra.py:check")]
    assert mine.severities == ["warning"] and mine.messages == {"my-text"}
    assert rows[("MY-RULE-ID", rulesdoc.INPUT, "validators/extra.py:check")].severities == ["error", "information"]
    assert ("OTHER-ID", rulesdoc.SECOND, "validators/extra.py:check") in rows
    assert not [k for k in rows if k[2] == "validators/extra.py:_warn"]


def test_a_code_the_scan_cannot_read_stops_the_generation(scanned_module: Path) -> None:
    scanned_module.write_text(
        "from kroniker.validators.findings import Severity, finding\n"
        "def check(rule):\n"
        "    yield finding(Severity.ERROR, rule.code_of(), 'Bundle')\n", encoding="utf-8")
    with pytest.raises(LookupError, match=r"validators/extra.py:3 \(check\): cannot tell the code"):
        rulesdoc.markdown()
