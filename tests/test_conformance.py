"""kroniker conformance: the requirements and their traceability, the suite against our own reference server and
against deliberately broken variants of it (each must fail exactly the requirements it breaks), the documents
suite, session records that rerun to the same results, the reports, and the command line."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa

from kroniker.conformance import features, reports, session
from kroniker.conformance import requirements as reqs
from kroniker.conformance.documents import composition, diagnosis_card, shared_note
from kroniker.conformance.targets import LocalServer, vendor_documents
from kroniker.packages import Installer
from kroniker.reference_server import policy
from kroniker.reference_server.app import ROUTES, create_app
from kroniker.reference_server.metadata import DocumentMeta
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.store import SearchQuery
from kroniker.validators import Severity
from kroniker.validators.packages import PackageCache
from kroniker.validators.validate import Validator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_REQUIREMENTS = {"PK-NOTAT-PROFIL", "PK-SOEG-PAKKE", "PK-PAKKEKODE-BEVARES", "PK-SPOERGESKEMA"}
# The package note's profile has the vendor's feature (features/leverandoer/pakkenotat.feature), which the server
# suite does not run: tagged, so covered, but not run against a sharing server. Finding the package's notes and
# keeping its code are features/kliniker/pakkenotater.feature (the server suite).
VENDOR_ONLY = {"PK-NOTAT-PROFIL"}  # the documents suite runs it with a vendor's package notes
UNCOVERED = PACKAGE_REQUIREMENTS - VENDOR_ONLY - {"PK-SOEG-PAKKE", "PK-PAKKEKODE-BEVARES", "PK-SPOERGESKEMA"}
DOCUMENT_REQUIREMENTS = {"SN-GYLDIG", "SN-TITEL", "SN-NOTAT-TEKST", "SN-DATOER", "DOK-CPR", "DOK-SOR",
                         "DOK-REFERENCER", "CL-GYLDIG", "CL-TITEL", "CL-INGEN-TILLAEGSTEKST"}


def statuses(record: dict[str, Any], *wanted: str) -> set[str]:
    return {r["id"] for r in record["requirements"] if r["status"] in wanted}


# -- requirements as data ----------------------------------------------------------------------------------

def test_every_requirement_is_covered_or_says_why_not() -> None:
    catalogue, scenarios = reqs.load(), features.load_all()
    traces = reqs.traceability(catalogue, scenarios)
    uncovered = {t.requirement.id for t in traces if not t.covered}
    # The package's requirements wait for the package issues; everything else has a scenario.
    assert uncovered == UNCOVERED
    for t in traces:
        if not t.covered:
            assert t.requirement.not_covered and t.requirement.not_covered["da"] and t.requirement.not_covered["en"]
    assert reqs.unknown_tags(catalogue, scenarios) == []


def test_requirements_have_both_languages_a_source_and_a_grade() -> None:
    catalogue = reqs.load()
    ids = [r.id for r in catalogue.requirements]
    assert len(ids) == len(set(ids))
    for r in catalogue.requirements:
        assert r.text["da"].strip() and r.text["en"].strip() and r.text["da"] != r.text["en"]
        assert r.grade in ("F1", "F2", "F3", "F4")
        assert r.source["standard"] and r.source["version"] and r.source["section"]
    # The areas the issue names are all there: sharing, finding, replacing, refusing, blocks, værdispring, MinLog.
    assert {"deling", "adgang", "spaerring", "minlog", "dokument", "pakke"} <= {r.area for r in catalogue.requirements}


def test_document_requirements_name_rules_of_the_catalogue() -> None:
    """A rule id in requirements.json that the validator never reports would make a requirement pass forever."""
    prose = json.loads((ROOT / "profiles" / "rules" / "prose-rules.json").read_text(encoding="utf-8"))
    second = json.loads((ROOT / "profiles" / "rules" / "second-codes.json").read_text(encoding="utf-8"))
    # A care package's own rules (validators/package_notes.py) are listed in docs/rules.md as "package rule".
    package_rules = [line.split("`")[1] for line in (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
                     .splitlines() if "| package rule |" in line]
    assert package_rules
    known = json.dumps([prose, second, package_rules])
    for r in reqs.load().requirements:
        for code in r.rules:
            # findings.md: `ref-unresolved` is a structure code with the second code DOC-REF-RESOLVE (features/
            # leverandoer/journalnotat.feature shows the validator reporting it).
            assert code in (reqs.ANY_ERROR, "ref-unresolved", "DOC-REF-RESOLVE") or f'"{code}"' in known, (r.id, code)


def test_the_requirements_command_prints_the_table_and_the_uncovered(capsys: pytest.CaptureFixture[str]) -> None:
    from kroniker.cli import main

    assert main(["conformance", "requirements", "--lang", "da"]) == 0
    out = capsys.readouterr().out
    assert "DEL-ERSTAT  [F1]  En rettelse erstatter" in out
    assert "- lps/deling.feature:23  Lægesystemet retter et notat, og det gamle bliver erstattet" in out
    uncovered = out.split(f"Krav uden scenarie: {len(UNCOVERED)}", 1)[1]
    assert {line.split(":")[0].strip() for line in uncovered.strip().splitlines()} == UNCOVERED
    assert main(["conformance", "requirements", "--format", "json", "--lang", "en"]) == 0
    data = json.loads(capsys.readouterr().out)
    erstat = next(r for r in data["requirements"] if r["id"] == "DEL-ERSTAT")
    assert erstat["scenarios"] == ["lps/deling.feature:23"]


# -- the suite against our own reference server and broken variants of it -------------------------------------

@pytest.fixture(scope="module")
def cache(care_package_cache: PackageCache) -> Path:
    """MedCom's packages and kroniker's care packages, as a user has them after `kroniker packages install`
    (borger/svar_hjemmefra.feature answers the care package's questionnaires through the server)."""
    return care_package_cache.root


def run_against(cache: Path, app_factory: Callable[[Settings], Any] | None = None, seed: int = 7) -> dict[str, Any]:
    with LocalServer(package_cache=cache, app_factory=app_factory) as target:
        return session.execute(session.SERVER, target=target, cache=cache, seed=seed)


@pytest.fixture(scope="module")
def good_run(cache: Path) -> dict[str, Any]:
    return run_against(cache)


def server_requirements() -> set[str]:
    return {rid for s in features.server_suite() for rid in s.requirements}


def test_the_suite_passes_against_our_reference_server(good_run: dict[str, Any]) -> None:
    assert good_run["summary"]["passed"], [c["id"] for c in good_run["cases"] if c["status"] != "passed"]
    assert len(good_run["cases"]) == len(features.server_suite())
    assert statuses(good_run, "passed") == server_requirements()
    assert statuses(good_run, "not-run") == DOCUMENT_REQUIREMENTS | VENDOR_ONLY
    assert statuses(good_run, "not-covered") == UNCOVERED
    assert good_run["target"]["kind"] == "local"
    assert good_run["packages"], "the record names the FHIR packages the server validated with"


def test_the_record_holds_every_exchange_without_tokens(good_run: dict[str, Any]) -> None:
    exchanges = [e for c in good_run["cases"] for e in c["evidence"]["exchanges"]]
    assert len(exchanges) > 100
    assert all(e["response"]["status"] for e in exchanges)
    text = json.dumps(good_run)
    assert "Bearer" not in text and "eyJ" not in text  # callers are named, tokens are never kept
    submit = next(e for e in exchanges if e["request"]["method"] == "POST" and e["request"]["path"] == "/fhir/Bundle")
    assert submit["request"]["caller"] == "source:481751000016007"
    assert json.loads(submit["request"]["body"]["text"])["resourceType"] == "Bundle"


def test_a_replayed_record_gives_the_same_results(good_run: dict[str, Any]) -> None:
    again = session.execute(session.SERVER, seed=good_run["seed"], replay=good_run)
    assert session.differences(good_run, again) == []
    assert session.results(again) == session.results(good_run)
    assert again["target"] == good_run["target"] and again["replayed"]["started"] == good_run["started"]


def test_a_live_rerun_gives_the_same_results(cache: Path, good_run: dict[str, Any]) -> None:
    again = run_against(cache, seed=good_run["seed"])
    assert session.results(again) == session.results(good_run)
    assert again["started"] >= good_run["started"]


def _ignores_blocks(settings: Settings) -> Any:
    """A server whose read rule never sees the citizen's blocks."""
    def may_read(p: Any, cpr: str, relations: Any, blocks: Any, override: Any, now: Any,
                 *rest: Any) -> policy.Decision:
        return policy.may_read(p, cpr, relations, (), override, now, *rest)

    routes = [dataclasses.replace(r, rule=may_read) if r.rule is policy.may_read else r for r in ROUTES]
    return create_app(settings, routes=routes)


class _Lenient(Validator):
    """Finds what the real validator finds, and lets every error through."""

    def validate_parsed(self, parsed: Any, started: float | None = None) -> Any:
        report = super().validate_parsed(parsed, started)
        report.findings = [f for f in report.findings if f.severity < Severity.ERROR]
        return report


def _accepts_invalid(settings: Settings) -> Any:
    app = create_app(settings)
    app.state.ctx.validator = _Lenient(PackageCache(settings.package_cache))
    return app


def _answers_other_patients(settings: Settings) -> Any:
    """A server whose search forgets the patient: it answers with the documents of every patient it has."""
    app = create_app(settings)
    store = app.state.ctx.store
    search = store.search
    engine = sa.create_engine(settings.database)

    def any_patient(q: SearchQuery) -> list[Any]:
        with engine.connect() as conn:
            cprs = [row[0] for row in conn.execute(sa.text("SELECT DISTINCT patient_cpr FROM documents"))]
        return [d for cpr in sorted(cprs) for d in search(dataclasses.replace(q, patient_cpr=cpr))]

    store.search = any_patient
    return app


def _loses_the_package_code(settings: Settings) -> Any:
    """A server that drops the event codes of what it stores: the package note is kept, but its metadata (the
    DocumentReference's context.event, the rows a search by event reads) no longer carries the package's code."""
    app = create_app(settings)
    store = app.state.ctx.store
    submit = store.submit

    def forgetful(meta: DocumentMeta, *args: Any, **kwargs: Any) -> Any:
        context = {k: v for k, v in (meta.docref.get("context") or {}).items() if k != "event"}
        return submit(dataclasses.replace(meta, events=[], docref={**meta.docref, "context": context}),
                      *args, **kwargs)

    store.submit = forgetful
    return app


# Which requirements each variant breaks, from the requirements' texts (requirements.json), not from a run:
# ignoring blocks breaks every requirement about what a block does, including "a blocked look-up is not in MinLog"
# and "the blocks still hold for professionals while a proxy reads"; værdispring (lifting blocks with a reason), what
# the citizen herself sees and what a proxy sees still hold.
BROKEN = {
    "ignores-blocks": (_ignores_blocks, {"SPAER-ALLE", "SPAER-PERSON", "SPAER-ORGANISATION", "SPAER-PERIODE",
                                         "SPAER-OPHAEV", "MINLOG-SPAERRET-OPSLAG", "SPAER-PAA-VEGNE-AF"}),
    "accepts-invalid": (_accepts_invalid, {"DEL-AFVIS-UGYLDIG"}),
    "answers-other-patients": (_answers_other_patients, {"DEL-SOEG-KUN-PATIENTEN"}),
    # The code not kept (PK-PAKKEKODE-BEVARES) means a search by the package's code cannot find the package's
    # notes (PK-SOEG-PAKKE); a block still hides the package note (SPAER-ORGANISATION holds).
    "loses-the-package-code": (_loses_the_package_code, {"PK-PAKKEKODE-BEVARES", "PK-SOEG-PAKKE"}),
}


@pytest.mark.parametrize("variant", list(BROKEN))
def test_a_broken_server_fails_exactly_the_requirements_it_breaks(cache: Path, variant: str) -> None:
    factory, breaks = BROKEN[variant]
    record = run_against(cache, factory)
    assert statuses(record, "failed") == breaks
    assert statuses(record, "error") == set()
    # Nothing it does not break fails; a requirement is at most inconclusive where the broken behaviour stopped
    # the scenario that tests it before its own check.
    assert statuses(record, "passed", "inconclusive") == server_requirements() - breaks
    assert not record["summary"]["passed"]


def test_a_server_answering_other_patients_leaves_the_rest_inconclusive_not_failed(cache: Path) -> None:
    record = run_against(cache, _answers_other_patients)
    inconclusive = [r for r in record["requirements"] if r["status"] == "inconclusive"]
    assert inconclusive, "the look-ups that saw other patients' documents cannot decide their own requirement"
    for r in inconclusive:
        assert all(c["status"] in ("passed", "inconclusive") for c in r["cases"])
        assert any("DEL-SOEG-KUN-PATIENTEN" in c.get("why", "") for c in r["cases"])


# -- the documents suite ------------------------------------------------------------------------------------

def write(folder: Path, name: str, doc: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def run_documents(folder: Path, cache: Path) -> dict[str, Any]:
    return session.execute(session.DOCUMENTS, documents=vendor_documents(folder), folder=folder, cache=cache, seed=1)


def test_a_vendors_correct_documents_pass(tmp_path: Path, cache: Path) -> None:
    write(tmp_path, "notat.json", shared_note())
    write(tmp_path, "diagnosekort.json", diagnosis_card())
    record = run_documents(tmp_path, cache)
    assert record["summary"]["passed"], record["cases"]
    assert [c["id"] for c in record["cases"]] == [
        "leverandoer/diagnosekort.feature:12#diagnosekort.json", "leverandoer/journalnotat.feature:13#notat.json"]
    assert statuses(record, "passed") == DOCUMENT_REQUIREMENTS
    assert {d["name"]: d["kind"] for d in record["inputs"]["documents"]} == {
        "notat.json": "notes", "diagnosekort.json": "conditionlist"}


def test_a_vendors_broken_documents_fail_the_requirements_they_break(tmp_path: Path, cache: Path) -> None:
    wrong_title = shared_note()
    composition(wrong_title)["title"] = "Journalnotat"
    with_note = diagnosis_card()
    next(e["resource"] for e in with_note["entry"] if e["resource"]["resourceType"] == "Condition")["note"] = [
        {"text": "Ønsker ikke operation"}]
    write(tmp_path, "notat.json", wrong_title)
    write(tmp_path, "diagnosekort.json", with_note)
    (tmp_path / "noget.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    record = run_documents(tmp_path, cache)
    assert statuses(record, "failed") == {"SN-TITEL", "CL-INGEN-TILLAEGSTEKST"}
    cases = {c["id"]: c for c in record["cases"]}
    # A document of no known standard is a failed test case of its own, not silently skipped.
    unknown = cases["leverandoer/diagnosekort.feature:12#noget.json"]
    assert unknown["status"] == "failed"
    assert "neither a Shared Note nor a diagnosis card" in " ".join(s.get("message", "") for s in unknown["steps"])
    # The diagnosis card with a note is otherwise valid: a warning names the requirement it breaks.
    card = cases["leverandoer/diagnosekort.feature:12#diagnosekort.json"]
    assert card["verdicts"]["CL-INGEN-TILLAEGSTEKST"]["status"] == "failed"
    assert card["verdicts"]["CL-GYLDIG"]["status"] == "passed"
    # Replaying the record needs neither the documents nor the validator.
    for p in tmp_path.iterdir():
        p.unlink()
    docs = [session_document(tmp_path, d) for d in record["inputs"]["documents"]]
    again = session.execute(session.DOCUMENTS, documents=docs, folder=tmp_path, seed=1, replay=record)
    assert session.differences(record, again) == []


def session_document(folder: Path, d: dict[str, Any]) -> Any:
    from kroniker.conformance.document_steps import VendorDocument

    return VendorDocument(folder / d["name"], d["name"], d["sha256"], d["kind"])


def test_the_evidence_zip_names_medcoms_protocol_step_files(tmp_path: Path, cache: Path) -> None:
    """MedCom's send protocol for ConditionList (step 3.3.1.6, spec/validator-anchors.md §3) forbids sharing the
    GP's additional text; a vendor names its evidence `<Standard>_<step>_<letter>.<ext>`."""
    with_note = diagnosis_card()
    next(e["resource"] for e in with_note["entry"] if e["resource"]["resourceType"] == "Condition")["note"] = [
        {"text": "Ønsker ikke operation"}]
    write(tmp_path, "a.json", diagnosis_card())
    write(tmp_path, "b.json", with_note)
    record = run_documents(tmp_path, cache)
    with zipfile.ZipFile(__import__("io").BytesIO(reports.evidence_zip(record, "da"))) as z:
        medcom = sorted(n for n in z.namelist() if n.startswith("medcom/"))
        assert medcom == ["medcom/ConditionList_3.3.1.6_A.json", "medcom/ConditionList_3.3.1.6_B.json"]
        a, b = (json.loads(z.read(n)) for n in medcom)
    assert (a["document"], a["result"], a["step"]) == ("a.json", "passed", "3.3.1.6")
    assert (b["document"], b["result"]) == ("b.json", "failed")
    assert any("CL-COND-NOTE-SHARED" in f for f in b["findings"])
    assert b["sha256"] == hashlib.sha256((tmp_path / "b.json").read_bytes()).hexdigest()


# -- package notes in the documents suite -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_with_package(care_package_cache: PackageCache) -> Path:
    """MedCom's packages and kroniker's care package, installed by the public commands (as a vendor would)."""
    return care_package_cache.root


@pytest.fixture(scope="module")
def medcom_only_cache(tmp_path_factory: pytest.TempPathFactory, package_dir: Path) -> Path:
    """MedCom's packages only: a vendor who has not installed kroniker's care package."""
    root = tmp_path_factory.mktemp("medcom-only-packages")
    Installer(PackageCache(root / "cache"), registries=[]).install([str(package_dir)])
    return root / "cache"


def built_package_note(cache: Path, out: Path) -> dict[str, Any]:
    """A package note made by `kroniker note build` from the documented example input."""
    from kroniker.cli import main

    out.parent.mkdir(parents=True, exist_ok=True)
    assert main(["note", "build", str(ROOT / "docs" / "examples" / "note-input.json"), "-o", str(out),
                 "--cache", str(cache)]) == 0
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def _without_section(doc: dict[str, Any]) -> None:
    """The export keeps only the doctor's free text: the note's XHTML has no "Mål og planer"."""
    obs = next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Observation")
    free_text = json.loads((ROOT / "docs" / "examples" / "note-input.json").read_text(encoding="utf-8"))["free_text"]
    obs["extension"][0]["valueAttachment"]["data"] = base64.b64encode(
        f"<p>{free_text}</p>".encode()).decode("ascii")


NOTE_CASES = ["leverandoer/journalnotat.feature:13#pakkenotat.json",
              "leverandoer/pakkenotat.feature:12#pakkenotat.json"]
NOTE_REQUIREMENTS = {"SN-GYLDIG", "SN-TITEL", "SN-NOTAT-TEKST", "SN-DATOER", "DOK-CPR", "DOK-SOR", "DOK-REFERENCER"}


def test_a_built_package_note_passes_as_shared_note_and_package_note(tmp_path: Path, cache_with_package: Path) -> None:
    built_package_note(cache_with_package, tmp_path / "docs" / "pakkenotat.json")
    record = run_documents(tmp_path / "docs", cache_with_package)
    assert [d["kind"] for d in record["inputs"]["documents"]] == ["packagenote"]
    # A package note is a Shared Note too: both scenarios run with it.
    assert [c["id"] for c in record["cases"]] == NOTE_CASES
    assert record["summary"]["passed"], record["cases"]
    assert statuses(record, "passed") == NOTE_REQUIREMENTS | {"PK-NOTAT-PROFIL"}


def test_a_package_note_without_its_section_fails_the_package_requirement_only(
        tmp_path: Path, cache_with_package: Path) -> None:
    # docs/rules.md: a package note without the section "Mål og planer" breaks PACKAGE-NOTE-SECTION, a rule of
    # the package's profile, not of MedCom's Shared Notes.
    doc = built_package_note(cache_with_package, tmp_path / "built.json")
    _without_section(doc)
    write(tmp_path / "docs", "pakkenotat.json", doc)
    record = run_documents(tmp_path / "docs", cache_with_package)
    assert statuses(record, "failed") == {"PK-NOTAT-PROFIL"}
    assert statuses(record, "passed") == NOTE_REQUIREMENTS
    case = {c["id"]: c for c in record["cases"]}[NOTE_CASES[1]]
    assert case["status"] == "failed"
    assert any("PACKAGE-NOTE-SECTION" in f for f in case["verdicts"]["PK-NOTAT-PROFIL"]["findings"])


def test_a_package_note_without_kronikers_package_installed_cannot_decide(
        tmp_path: Path, medcom_only_cache: Path, cache_with_package: Path) -> None:
    """Without kroniker's package the note would be read as a plain Shared Note: the package's case is an error,
    not a pass."""
    built_package_note(cache_with_package, tmp_path / "docs" / "pakkenotat.json")
    record = run_documents(tmp_path / "docs", medcom_only_cache)
    assert statuses(record, "error") == {"PK-NOTAT-PROFIL"}
    case = {c["id"]: c for c in record["cases"]}[NOTE_CASES[1]]
    assert "kroniker.lbp" in " ".join(s.get("message", "") for s in case["steps"])


# -- reports ------------------------------------------------------------------------------------------------------

def test_reports_show_requirements_cases_and_evidence(cache: Path) -> None:
    record = run_against(cache, _accepts_invalid, seed=11)
    page = reports.html(record, "da")
    assert 'id="DEL-AFVIS-UGYLDIG"' in page and "fejlet" in page and "bestået" in page
    assert "Et notat med forkert titel afvises med en dansk forklaring, og intet gemmes" in page
    assert "POST /fhir/Bundle → 201" in page  # the evidence: the invalid note was taken
    suites = ElementTree.fromstring(reports.junit(record, "da"))
    cases = suites.findall(".//testcase")
    assert len(cases) == len(record["cases"])
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == [
        "Et notat med forkert titel afvises med en dansk forklaring, og intet gemmes"]
    assert [p.get("value") for p in failed[0].findall("properties/property")] == ["DEL-AFVIS-UGYLDIG"]
    # The failed check speaks the report's language: the server took (201) what it should refuse with 422
    # (docs/server.md: an invalid document is answered 422 with an OperationOutcome).
    message = failed[0].find("failure").get("message")
    assert "forventede HTTP 422, fik 201" in message, message
    english = ElementTree.fromstring(reports.junit(record, "en")).findall(".//testcase/failure")[0].get("message")
    assert "expected HTTP 422, found 201" in english, english
    assert "expected HTTP 422, found 201" in reports.html(record, "en")
    assert "forventede HTTP 422, fik 201" in page
    with zipfile.ZipFile(__import__("io").BytesIO(reports.evidence_zip(record, "da"))) as z:
        names = z.namelist()
        folders = {n.split("/")[0] for n in names if "/" in n}
        assert len(folders) == len(record["cases"])
        assert {"record.json", "report.html", "junit.xml"} <= set(names)
        first = sorted(folders)[0]
        assert f"{first}/case.json" in names and f"{first}/01-request.http" in names
        assert json.loads(z.read("record.json"))["cases"] == record["cases"]


# -- the command line -----------------------------------------------------------------------------------------------

def kroniker(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KRONIKER_DEBUG", "KRONIKER_HOME")}
    env["KRONIKER_HOME"] = str(cwd / "kroniker-home")  # the key that signs session records, per test
    env["KRONIKER_FHIR_PACKAGES"] = str(cache)
    return subprocess.run([sys.executable, "-m", "kroniker", "conformance", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, check=False)


@pytest.fixture
def ignoring_blocks(cache: Path) -> Iterator[tuple[str, bytes]]:
    """A broken server a vendor might run, and the key it signs tokens with."""
    with LocalServer(package_cache=cache, app_factory=_ignores_blocks) as target:
        key = target.tokens.key  # type: ignore[attr-defined]
        yield target.url, key


TOKEN_SCRIPT = '''
import json, sys
from kroniker.reference_server.tokens import Principal, issue
claims = json.load(sys.stdin)
print(issue(open(sys.argv[1], "rb").read(), Principal(**claims)))
'''


def test_run_against_a_target_with_a_token_command(tmp_path: Path, cache: Path,
                                                    ignoring_blocks: tuple[str, bytes]) -> None:
    url, key = ignoring_blocks
    (tmp_path / "key").write_bytes(key)
    (tmp_path / "mint_token.py").write_text(TOKEN_SCRIPT, encoding="utf-8")
    r = kroniker("run", "--target", url, "--token-command", f"{sys.executable} mint_token.py key", "--lang", "da",
                 "-o", "run.json", "--junit", "run.xml", cache=cache, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "SPAER-ALLE (F1): fejlet" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    record = session.load(tmp_path / "run.json")
    assert record["target"] == {"kind": "url", "url": url, "tokens": f"command {sys.executable}"}
    assert statuses(record, "failed") == BROKEN["ignores-blocks"][1]
    # The reviewer replays it offline, with no server and no tokens: the same result.
    r = kroniker("rerun", "run.json", "-o", "again.json", "--lang", "en", cache=cache, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    cases = len(features.server_suite())
    assert f"The rerun gives the same result as the session ({cases} test cases)." in r.stdout
    r = kroniker("report", "run.json", "--html", "run.html", "--zip", "run.zip", cache=cache, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "run.html").stat().st_size and (tmp_path / "run.zip").stat().st_size


def test_a_token_file_without_a_caller_is_an_error_of_the_cases_that_need_it(
        tmp_path: Path, cache: Path, ignoring_blocks: tuple[str, bytes]) -> None:
    url, _ = ignoring_blocks
    (tmp_path / "tokens.json").write_text("{}", encoding="utf-8")
    r = kroniker("run", "--target", url, "--tokens", "tokens.json", "-o", "run.json", "--lang", "en",
                 cache=cache, cwd=tmp_path)
    assert r.returncode == 1
    record = session.load(tmp_path / "run.json")
    assert {c["status"] for c in record["cases"]} == {"error"}
    messages = {s.get("message", "") for c in record["cases"] for s in c["steps"] if s["status"] == "error"}
    assert any(m.startswith("no token for source:481751000016007 in tokens.json") for m in messages), messages


@pytest.mark.parametrize(("args", "says"), [
    (["run", "--documents", "x", "--target", "http://127.0.0.1:9"], "vælg enten --documents eller --target"),
    (["run", "--tokens", "t.json"], "--tokens og --token-command kræver --target"),
    (["run", "--target", "http://127.0.0.1:9"], "--target kræver --tokens FIL eller --token-command KOMMANDO"),
    (["run", "--target", "http://127.0.0.1:9", "--tokens", "nope.json"],
     "nope.json: tokenfilen kan ikke læses: filen findes ikke"),
    (["run", "--documents", "nowhere"], "nowhere: ikke en mappe"),
    # A missing record is said in words, not as Python's OSError ([Errno 2] …).
    (["rerun", "nothing.json"], "kroniker conformance: nothing.json: filen findes ikke\n"),
    (["report", "nothing.json", "--html", "x.html"], "kroniker conformance: nothing.json: filen findes ikke\n"),
    (["report", "nothing.json"], "vælg mindst én af --html, --junit, --zip"),
])
def test_usage_errors_say_what_is_wrong_with_status_2(tmp_path: Path, cache: Path, args: list[str],
                                                      says: str) -> None:
    r = kroniker(*args, "--lang", "da", cache=cache, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in r.stderr
    assert "Traceback" not in r.stderr and "Errno" not in r.stderr


@pytest.mark.parametrize(("lang", "unknown", "title"), [
    ("en", ["1 test case: 0 passed, 1 failed", "the document is neither a Shared Note nor a diagnosis card"],
     'expected "Journalnotat for 1505629996", found "Journalnotat"'),
    ("da", ["1 testtilfælde: 0 bestået, 1 fejlet", "dokumentet er hverken et Shared Note-notat eller et diagnosekort"],
     'forventede "Journalnotat for 1505629996", fandt "Journalnotat"'),
])
def test_the_console_says_what_failed_in_one_language(tmp_path: Path, cache: Path, lang: str, unknown: list[str],
                                                     title: str) -> None:
    """Found trying the conformance console as a new user: a document of no known kind failed without a word of
    why, "1 test cases", findings in Danish under --lang en, and each finding's location printed twice."""
    write(tmp_path / "a", "p.json", {"resourceType": "Patient"})
    r = kroniker("run", "--documents", "a", "-o", "a.json", "--lang", lang, cache=cache, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert all(text in r.stdout for text in unknown), r.stdout
    wrong_title = shared_note()
    composition(wrong_title)["title"] = "Journalnotat"
    write(tmp_path / "b", "note.json", wrong_title)
    r = kroniker("run", "--documents", "b", "-o", "b.json", "--lang", lang, cache=cache, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    line = next(x for x in r.stdout.splitlines() if "note.json" in x and "COMP-TITLE" in x)
    assert title in line and line.count("Bundle.entry[0].resource.title") == 1, line


def test_a_changed_record_is_refused_by_rerun_and_report(tmp_path: Path, cache: Path) -> None:
    """Session records are signed (HMAC-SHA256, the key in KRONIKER_HOME): a record changed after the run, one
    signed by another KRONIKER_HOME, or one without a signature is refused with a message, exit 1."""
    wrong_title = shared_note()
    composition(wrong_title)["title"] = "Journalnotat"
    write(tmp_path / "docs", "note.json", wrong_title)
    r = kroniker("run", "--documents", "docs", "-o", "run.json", "--lang", "en", cache=cache, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    signed = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert signed["signature"]["alg"] == "HMAC-SHA256" and len(signed["signature"]["value"]) == 64
    assert kroniker("rerun", "run.json", "-o", "a.json", cache=cache, cwd=tmp_path).returncode == 0
    # The vendor turns its failure into a pass.
    tampered = json.loads(json.dumps(signed))
    for c in tampered["cases"]:
        c["status"] = "passed"
    (tmp_path / "tampered.json").write_text(json.dumps(tampered), encoding="utf-8")
    for args in (["rerun", "tampered.json"], ["report", "tampered.json", "--html", "t.html"]):
        r = kroniker(*args, "--lang", "en", cache=cache, cwd=tmp_path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "tampered.json: the record has been changed since it was signed" in r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "t.html").exists()
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    (tmp_path / "unsigned.json").write_text(json.dumps(unsigned), encoding="utf-8")
    r = kroniker("report", "unsigned.json", "--html", "u.html", "--lang", "da", cache=cache, cwd=tmp_path)
    assert r.returncode == 1 and "unsigned.json: sessionen er ikke signeret" in r.stderr
    r = kroniker("report", "unsigned.json", "--html", "u.html", "--unsigned", cache=cache, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Another KRONIKER_HOME (another key) cannot vouch for the record.
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "run.json").write_bytes((tmp_path / "run.json").read_bytes())
    r = kroniker("report", "run.json", "--html", "r.html", "--lang", "en", cache=cache, cwd=other)
    assert r.returncode == 1 and "signed with another key" in r.stderr
    r = kroniker("rerun", "run.json", "--lang", "en", cache=cache, cwd=other)  # makes a key of its own first
    assert r.returncode == 1 and "signed with another key" in r.stderr, r.stderr


def test_a_record_that_is_not_one_is_refused(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "something else"}', encoding="utf-8")
    r = kroniker("rerun", "x.json", cache=cache, cwd=tmp_path)
    assert r.returncode == 2 and "not a kroniker conformance session record" in r.stderr


def test_a_target_that_compresses_its_answers_passes(cache: Path) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    record = run_against(cache, lambda s: GZipMiddleware(create_app(s), minimum_size=100))
    assert record["summary"]["passed"]


def test_an_answer_larger_than_the_limit_is_not_read(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kroniker.conformance import steps

    monkeypatch.setattr(steps, "MAX_RESPONSE_BYTES", 3000)  # a DocumentReference is larger; an outcome is not
    record = run_against(cache)
    messages = [s.get("message", "") for c in record["cases"] for s in c["steps"] if s["status"] == "error"]
    assert messages and all("is larger than" in m for m in messages)
    assert not record["summary"]["passed"]


def test_a_second_record_in_the_same_second_does_not_replace_the_first(tmp_path: Path) -> None:
    """Found by trying the README as a new user: two reruns within a second wrote one file, the first lost."""
    from datetime import datetime

    from kroniker.conformance.cli import new_record_path

    now = datetime(2026, 12, 5, 15, 5, 10)
    first = new_record_path(tmp_path, now)
    first.write_text("{}")
    second = new_record_path(tmp_path, now)
    assert first.name == "conformance-20261205-150510.json"
    assert second != first and not second.exists()
