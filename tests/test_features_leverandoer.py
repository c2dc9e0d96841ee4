"""Step code for features/leverandoer: a GP-system vendor checks the notes and diagnosis cards it exports."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from kroniker.clinical.content import Content
from kroniker.clinical.note import build_note
from kroniker.validators import Severity
from kroniker.validators.findings import Finding, Report
from kroniker.validators.packages import PackageCache
from kroniker.validators.validate import Validator
from tests.builders import CLINIC, PATIENT, SOR, clone, diagnosis_card, shared_note

ROOT = Path(__file__).resolve().parents[1]
DANISH_TIME = ZoneInfo("Europe/Copenhagen")
MONTHS = {name: i for i, name in enumerate(
    ["januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
     "november", "december"], start=1)}

# Words that give away an English sentence in a message meant to be Danish. None of them is a Danish word.
ENGLISH = re.compile(r"\b(the|of|shall|must|should|requirement|minimum|expected|expecting|found|missing"
                     r"|see|such|directory|value)\b", re.IGNORECASE)

# The note's content as the vendor's export might produce it; keyed by the wording in the feature file.
EMPTY_NOTES = {
    "tomme linjer og mellemrum": "  \n\n   \n",
    "et tomt afsnit": "<p></p>",
    "et linjeskift uden tekst": "<p><br/></p>",
}
ACTIVE_CONTENT = {
    "et script, der åbner et pop-op-vindue": '<p>Se vejledning.</p><script>window.open("https://x.example")</script>',
    "et afsnit, der reagerer på museklik": '<p onclick="alert(1)">Se vejledning.</p>',
    "et link, der kører javascript": '<p><a href="javascript:alert(1)">Se vejledning</a></p>',
    "en indlejret webside": '<p>Se vejledning.</p><iframe src="https://vejledning.example/"></iframe>',
    "et billede, der hentes fra en anden server": '<p>Øvelse 1:</p><p><img src="https://billeder.example/1.png"/></p>',
}
UNREADABLE = {
    "notatet som almindelig tekst": "Årskontrol, kroniske lænderygsmerter\nSmerter stabile.\n".encode(),
    "en tom fil": b"",
    "notatet som PDF": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
}
# The GP's registration from the annual control, as the vendor's system holds it (kroniker note build's input).
PACKAGE_NOTE_INPUT: dict[str, Any] = {
    "patient": {"cpr": PATIENT["cpr"], "given": PATIENT["given"][0], "family": PATIENT["family"]},
    "author": {"given": "Jens", "family": "Holm", "authorisation": "0C4QN"},
    "clinic": {"sor": "481751000016007", "name": CLINIC["name"], "ydernummer": "054321"},
    "date": "2026-11-20T09:15:00+01:00", "diagnosis": "L03",
    "goals": "Gå 30 minutter fem dage om ugen", "plan": "Hjemmeøvelser fra fysioterapeut",
    "next_control": "2027-11-20", "triage_colour": "green",
    "scores": {"startback.total": 3, "odi.percent": 22.0, "startback.risk": "low"},
    "free_text": "Årskontrol. Smerter stabile, NRS 4/10.",
}
SEVERITY_WORDS = {"fejlen": Severity.ERROR, "advarslen": Severity.WARNING}
CLI_LABELS = {"fejlen": "FEJL", "advarslen": "ADVARSEL"}
ENVIRONMENT_CODES = frozenset({"package-missing"})  # about the installed packages, not the document


@dataclass
class Export:
    """What the vendor's system exported, and what kroniker said about it."""

    document: dict[str, Any] | None = None
    kind: str = ""
    report: Report | None = None
    selected: list[Finding] = field(default_factory=list)
    file: Path | None = None
    cli: subprocess.CompletedProcess[str] | None = None


@pytest.fixture
def export() -> Export:
    return Export()


@pytest.fixture(scope="module")
def package_cache_with_kroniker(care_package_cache: PackageCache) -> PackageCache:
    """MedCom's packages and kroniker's care package, installed by the public commands (as a vendor would)."""
    return care_package_cache


# -- scenarios -------------------------------------------------------------------------------------

scenarios("leverandoer")


# -- helpers ---------------------------------------------------------------------------------------

def _resource(doc: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == rtype)


def _composition(doc: dict[str, Any]) -> dict[str, Any]:
    return _resource(doc, "Composition")


def _set_note(doc: dict[str, Any], note_html: str) -> None:
    attachment = _resource(doc, "Observation")["extension"][0]["valueAttachment"]
    attachment["data"] = base64.b64encode(note_html.encode("utf-8")).decode("ascii")


def _note_html(doc: dict[str, Any]) -> str:
    data = _resource(doc, "Observation")["extension"][0]["valueAttachment"]["data"]
    return base64.b64decode(data).decode("utf-8")


def _danish_time(day: int, month: str, year: int, clock: str) -> str:
    hour, minute = (int(x) for x in clock.split(":"))
    return datetime(year, MONTHS[month], day, hour, minute, tzinfo=DANISH_TIME).isoformat()


def _element(finding: Finding, doc: dict[str, Any]) -> str:
    """`Composition.title` for `Bundle.entry[0].resource.title`: the element as a vendor names it."""
    location = finding.location
    m = re.match(r"Bundle\.entry\[(\d+)\]\.resource(.*)$", location)
    if m:
        location = doc["entry"][int(m.group(1))]["resource"]["resourceType"] + m.group(2)
    return re.sub(r"\[\d+\]", "", location)


def _show(report: Report) -> str:
    return "\n".join(f"  {f.severity.label} {'/'.join(f.codes)} {f.location}: {f.message('da')}"
                     for f in report)


def _run_cli(path: Path, cache: PackageCache) -> subprocess.CompletedProcess[str]:
    # KRONIKER_DEBUG would let tracebacks out on purpose; the vendor does not set it.
    env = {k: v for k, v in os.environ.items() if k != "KRONIKER_DEBUG"}
    env["KRONIKER_FHIR_PACKAGES"] = str(cache.root)
    return subprocess.run([sys.executable, "-m", "kroniker", "validate", "--lang", "da", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


def _output(export: Export) -> str:
    assert export.cli is not None, "kroniker was not run"
    return export.cli.stdout + export.cli.stderr


# -- Givet -----------------------------------------------------------------------------------------

@given(parsers.parse("at {name} med CPR-nummer {cpr} er patient hos {clinic}"))
def patient_at_clinic(name: str, cpr: str, clinic: str) -> None:
    # The feature names the builders' patient and clinic; keep the two in step.
    assert name == f"{PATIENT['given'][0]} {PATIENT['family']}"
    assert cpr == PATIENT["cpr"]
    assert clinic == CLINIC["name"]


@given("at lægen har skrevet et notat fra årskontrollen for hendes lænderygsmerter")
def annual_control_note(export: Export) -> None:
    export.document, export.kind = shared_note(), "notatet"


@given("at lægen har skrevet et pakkenotat fra årskontrollen med mål, plan, næste kontrol og triagefarve")
def annual_control_package_note(export: Export, package_cache_with_kroniker: PackageCache) -> None:
    # Built by kroniker note build's code: the reference a vendor's export is measured against.
    export.document = build_note(PACKAGE_NOTE_INPUT, Content(package_cache_with_kroniker))
    export.kind = "pakkenotatet"


@given('at eksporten kun tager lægens fritekst med i notatet og udelader afsnittet "Mål og planer"')
def package_note_without_section(export: Export) -> None:
    assert export.document is not None
    _set_note(export.document, f"<p>{PACKAGE_NOTE_INPUT['free_text']}</p>")


@given(parsers.parse('at eksporten udelader linjen "{label}" i afsnittet "Mål og planer"'))
def package_note_without_line(export: Export, label: str) -> None:
    assert export.document is not None
    html = _note_html(export.document)
    # A line of the section is a paragraph that begins with its label in bold (PLO's fixed phrase).
    shorter = re.sub(rf"<p><b>{re.escape(label)}</b>.*?</p>", "", html, count=1, flags=re.DOTALL)
    assert shorter != html, f"the built note has no line {label!r}"
    _set_note(export.document, shorter)


@given("at lægen har registreret lændesmerter som forløbsdiagnose på hendes diagnosekort")
def diagnosis_card_with_low_back_pain(export: Export) -> None:
    export.document, export.kind = diagnosis_card(), "diagnosekortet"


@given(parsers.parse('at eksporten kun skriver "{title}" som titel'))
def title_without_cpr(export: Export, title: str) -> None:
    assert export.document is not None
    _composition(export.document)["title"] = title


@given(parsers.parse("at notatet kun består af {content}"))
def empty_note(export: Export, content: str) -> None:
    assert export.document is not None
    _set_note(export.document, EMPTY_NOTES[content])


@given(parsers.parse("at teksten er kopieret fra en webside, så notatet indeholder {content}"))
def note_with_active_content(export: Export, content: str) -> None:
    assert export.document is not None
    _set_note(export.document, ACTIVE_CONTENT[content])


@given(parsers.parse("at notatet blev oprettet den {day:d}. {month} {year:d} kl. {clock}"))
def note_created(export: Export, day: int, month: str, year: int, clock: str) -> None:
    assert export.document is not None
    created = _danish_time(day, month, year, clock)
    # Creation time is both the event start and the observation's time (MedCom wants them equal).
    _composition(export.document)["event"][0]["period"]["start"] = created
    _resource(export.document, "Observation")["effectiveDateTime"] = created


@given(parsers.parse("at eksporten angiver den seneste opdatering som den {day:d}. {month} {year:d} "
                     "kl. {clock}"))
def note_updated(export: Export, day: int, month: str, year: int, clock: str) -> None:
    assert export.document is not None
    _composition(export.document)["date"] = _danish_time(day, month, year, clock)


@given("at eksporten kun tager klinikkens ydernummer med, ikke dens SOR-nummer")
def clinic_without_sor(export: Export) -> None:
    assert export.document is not None
    org = _resource(export.document, "Organization")
    org["identifier"] = [i for i in org["identifier"] if i["system"] != SOR]
    assert org["identifier"], "the ydernummer should still be there"


@given(parsers.parse('at patientens CPR-nummer er tastet forkert som "{cpr}" i lægesystemet'))
def mistyped_cpr(export: Export, cpr: str) -> None:
    assert export.document is not None
    _resource(export.document, "Patient")["identifier"][0]["value"] = cpr
    # The export writes the title from the same registration, so the title agrees with the wrong number.
    _composition(export.document)["title"] = f"Journalnotat for {cpr}"


@given("at eksporten udelader lægens rolle i klinikken, selv om notatet henviser til den")
def practitioner_role_left_out(export: Export) -> None:
    assert export.document is not None
    before = len(export.document["entry"])
    export.document["entry"] = [e for e in export.document["entry"]
                                if e["resource"]["resourceType"] != "PractitionerRole"]
    assert len(export.document["entry"]) == before - 1


@given(parsers.parse('at lægen har skrevet tillægsteksten "{text}" til diagnosen'))
def condition_note(export: Export, text: str) -> None:
    assert export.document is not None
    _resource(export.document, "Condition")["note"] = [{"text": text}]


@given(parsers.parse('at eksporten har skrevet {content} i filen "{name}"'))
def unreadable_file(export: Export, tmp_path: Path, content: str, name: str) -> None:
    if content == "et notat, der blev afbrudt halvvejs":
        text = json.dumps(shared_note(), ensure_ascii=False)
        data = text[: len(text) // 2].encode("utf-8")
    else:
        data = UNREADABLE[content]
    export.file = tmp_path / name
    export.file.write_bytes(data)


# -- Når -------------------------------------------------------------------------------------------

@when(parsers.parse("eksporten af {kind} valideres"))
def validate_export(export: Export, request: pytest.FixtureRequest, kind: str) -> None:
    assert kind == export.kind and export.document is not None
    # A package note is checked with kroniker's package installed too, as `kroniker validate` does for a vendor.
    cache: PackageCache = request.getfixturevalue(
        "package_cache_with_kroniker" if kind == "pakkenotatet" else "package_cache")
    validator = Validator(cache) if kind == "pakkenotatet" else request.getfixturevalue("validator")
    export.report = validator.validate(json.dumps(clone(export.document), ensure_ascii=False).encode("utf-8"))


@when(parsers.parse('{kind} gemmes som "{name}" og valideres med kroniker på dansk'))
def save_and_run_cli(export: Export, package_cache: PackageCache, tmp_path: Path, kind: str,
                     name: str) -> None:
    assert kind.lower() == export.kind and export.document is not None
    export.file = tmp_path / name
    export.file.write_text(json.dumps(export.document, ensure_ascii=False, indent=2), encoding="utf-8")
    export.cli = _run_cli(export.file, package_cache)


@when("filen valideres med kroniker på dansk")
def run_cli(export: Export, package_cache: PackageCache) -> None:
    assert export.file is not None
    export.cli = _run_cli(export.file, package_cache)


# -- Så --------------------------------------------------------------------------------------------

@then(parsers.parse("godkendes {kind} uden fejl"))
def accepted_without_errors(export: Export, kind: str) -> None:
    assert kind == export.kind and export.report is not None
    assert export.report.valid, f"{kind} blev afvist:\n{_show(export.report)}"
    assert not export.report.errors(), _show(export.report)


@then("uden advarsler")
def without_warnings(export: Export) -> None:
    assert export.report is not None
    assert not export.report.warnings(), f"advarsler:\n{_show(export.report)}"


@then("ingen advarsler handler om selve diagnosekortet")
def no_warnings_about_the_document(export: Export) -> None:
    assert export.report is not None
    about_document = [f for f in export.report.warnings() if f.code not in ENVIRONMENT_CODES]
    assert not about_document, _show(export.report)


@then(parsers.parse('afvises {kind} med fejlen "{rule}"'))
def refused_with(export: Export, kind: str, rule: str) -> None:
    assert kind == export.kind and export.report is not None
    assert not export.report.valid, f"{kind} blev godkendt:\n{_show(export.report)}"
    export.selected = [f for f in export.report.errors() if rule in f.codes and f.severity == Severity.ERROR]
    assert export.selected, f"ingen fejl {rule}; fundet:\n{_show(export.report)}"


@then(parsers.parse('godkendes {kind}, men med advarslen "{rule}"'))
def accepted_with_warning(export: Export, kind: str, rule: str) -> None:
    assert kind == export.kind and export.report is not None
    assert export.report.valid, f"{kind} blev afvist:\n{_show(export.report)}"
    export.selected = [f for f in export.report.warnings() if rule in f.codes]
    assert export.selected, f"ingen advarsel {rule}; fundet:\n{_show(export.report)}"


@then(parsers.parse('{what} sidder i "{element}"'))
def finding_sits_in(export: Export, what: str, element: str) -> None:
    assert export.document is not None
    places = {_element(f, export.document) for f in export.selected}
    export.selected = [f for f in export.selected
                       if f.severity == SEVERITY_WORDS[what] and _element(f, export.document) == element]
    assert export.selected, f"{what} sidder i {sorted(places)}, ikke i {element}"


def _assert_danish(finding: Finding, *words: str) -> None:
    da = finding.message("da")
    text = da.removeprefix(f"{finding.location}: ")  # element names in the location are FHIR's, not prose
    for word in words:
        assert word in da, f"{word!r} står ikke i beskeden: {da}"
    assert da != finding.message("en"), f"beskeden er den samme på dansk og engelsk: {da}"
    english = ENGLISH.findall(text)
    assert not english, f"engelske ord {english} i den danske besked: {da}"


@then(parsers.parse('beskeden er på dansk og siger "{first}" og "{second}"'))
def message_in_danish_two(export: Export, first: str, second: str) -> None:
    assert export.selected
    for f in export.selected:
        _assert_danish(f, first, second)


@then(parsers.re(r'beskeden er på dansk og siger "(?P<words>[^"]+)"'))
def message_in_danish(export: Export, words: str) -> None:
    assert export.selected
    for f in export.selected:
        _assert_danish(f, words)


@then(parsers.parse("slutter kroniker med status {status:d}"))
def exit_status(export: Export, status: int) -> None:
    assert export.cli is not None
    assert export.cli.returncode == status, f"status {export.cli.returncode}:\n{_output(export)}"


@then(parsers.parse('udskriften siger "{text}" om filen'))
def output_says_about_file(export: Export, text: str) -> None:
    assert export.file is not None
    out = _output(export)
    lines = out.splitlines()
    assert any(str(export.file) in line for line in lines), f"filen {export.file} nævnes ikke:\n{out}"
    assert any(text in line for line in lines), f"{text!r} står ikke i udskriften:\n{out}"


@then(parsers.parse('udskriften viser {what} "{rule}" med beskeden: {message}'))
def output_shows_finding(export: Export, what: str, rule: str, message: str) -> None:
    out = _output(export)
    label = CLI_LABELS[what]
    hits = [line for line in out.splitlines() if f"[{rule}]" in line]
    assert hits, f"{rule} står ikke i udskriften:\n{out}"
    assert any(line.lstrip().startswith(label) and message in line for line in hits), \
        f"forventede {label} [{rule}] … {message}:\n{out}"


@then("der vises ingen programfejl")
def no_traceback(export: Export) -> None:
    out = _output(export)
    assert "Traceback" not in out and 'File "' not in out, out
    assert export.cli is not None and export.cli.stdout.strip(), "kroniker sagde ingenting"
