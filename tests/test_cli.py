"""`kroniker validate` as a user runs it: exit status, text and OperationOutcome output, languages, folders,
the package cache; in-process through `kroniker.cli.main` and as a real `python -m kroniker` process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kroniker.cli import main
from kroniker.validators.packages import PackageCache
from tests.builders import shared_note
from tests.conftest import ENV_KNOBS

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = ROOT / "validators" / "messages"
FINDING_SYSTEM = "urn:kroniker:finding"
SEVERITIES = {"fatal", "error", "warning", "information"}
# FHIR R4 IssueType (http://hl7.org/fhir/issue-type), the codes OperationOutcome.issue.code may take.
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
    "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
    "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict", "transient",
    "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
}


def catalogue(lang: str) -> dict[str, str]:
    return json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8"))


def literal_parts(template: str) -> list[str]:
    """The fixed words of a catalogue template, between its {placeholders}."""
    return [p for p in (s.strip() for s in re.split(r"\{[^}]*\}", template)) if len(p) >= 3]


def at(text: str, marker: str) -> str:
    offset = text.index(marker)
    return f"{text.count(chr(10), 0, offset) + 1}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


# -- fixtures and helpers --------------------------------------------------------------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) as the console script runs it: an argparse exit is an exit status too."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out and "Traceback" not in err
    return code, out, err


def run_process(argv: list[str], cache: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
    environ["KRONIKER_FHIR_PACKAGES"] = str(cache)
    proc = subprocess.run([sys.executable, "-m", "kroniker", *argv], capture_output=True, text=True,
                          encoding="utf-8", env=environ, cwd=tmp_path, timeout=120)
    assert "Traceback" not in proc.stdout and "Traceback" not in proc.stderr
    return proc


def write(folder: Path, name: str, doc: Any, indent: int | None = 2) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
    return path


def without_title() -> dict[str, Any]:
    doc = shared_note()
    assert doc["entry"][0]["resource"]["resourceType"] == "Composition"
    del doc["entry"][0]["resource"]["title"]
    return doc


@pytest.fixture
def valid_file(tmp_path: Path) -> Path:
    return write(tmp_path, "arskontrol.json", shared_note())


@pytest.fixture
def invalid_file(tmp_path: Path) -> Path:
    return write(tmp_path, "uden-titel.json", without_title())


def issues_by_code(oo: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for issue in oo["issue"]:
        out.setdefault(issue["details"]["coding"][0]["code"], []).append(issue)
    return out


def check_outcome(oo: dict[str, Any], source: Path | None = None) -> None:
    """An OperationOutcome in the shape spec/findings.md gives."""
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"], oo
    for issue in oo["issue"]:
        assert issue["severity"] in SEVERITIES, issue
        assert issue["code"] in ISSUE_TYPES, issue
        coding = issue["details"]["coding"]
        assert coding and all(c["system"] == FINDING_SYSTEM and c["code"] for c in coding), issue
        assert isinstance(issue["diagnostics"], str) and issue["diagnostics"].strip(), issue
        if "expression" in issue:
            assert len(issue["expression"]) == 1 and isinstance(issue["expression"][0], str), issue
        if "location" in issue:
            assert len(issue["location"]) == 1 and re.fullmatch(r"[1-9]\d*:[1-9]\d*", issue["location"][0]), issue
    if source is not None:
        sources = [e["valueString"] for e in oo.get("extension", []) if e["url"] == "urn:kroniker:source"]
        assert sources == [str(source)]


# -- exit status -------------------------------------------------------------------------------------------

def test_valid_document_exits_0(env: PackageCache, valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", str(valid_file)], capsys)
    assert code == 0, out + err
    assert str(valid_file) in out


def test_error_exits_1(env: PackageCache, invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", str(invalid_file)], capsys)
    assert code == 1
    assert "card-min" in out and "Bundle.entry[0].resource.title" in out


def test_missing_file_exits_2(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "findes-ikke.json"
    code, out, err = run(["validate", str(missing)], capsys)
    assert code == 2
    assert str(missing) in out + err


@pytest.mark.parametrize("content", [b"{\"resourceType\": \"Bundle\",", b"", b"[]", b"\xff\xfe{}", b"not json"])
def test_unreadable_input_exits_2(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  content: bytes) -> None:
    bad = tmp_path / "skadet.json"
    bad.write_bytes(content)
    code, out, _ = run(["validate", "--format", "json", str(bad)], capsys)
    assert code == 2
    oo = json.loads(out)
    check_outcome(oo, bad)
    assert [i["severity"] for i in oo["issue"]] == ["fatal"]


def test_unreadable_beats_errors(env: PackageCache, invalid_file: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(["validate", str(invalid_file), str(tmp_path / "findes-ikke.json")], capsys)
    assert code == 2


@pytest.mark.parametrize("argv", [
    [],
    ["validate"],
    ["--ukendt"],
    ["validate", "--ukendt", "x.json"],
    ["validate", "--format", "xml", "x.json"],
    ["validate", "--lang", "fr", "x.json"],
    ["valider", "x.json"],
], ids=["no-args", "no-paths", "unknown-global-option", "unknown-option", "bad-format", "bad-lang",
        "unknown-command"])
def test_usage_errors_exit_2(env: PackageCache, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "usage" in (out + err).lower()


def test_empty_folder_exits_2(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tom").mkdir()
    code, out, err = run(["validate", str(tmp_path / "tom")], capsys)
    assert code == 2
    assert err.strip() and not out.strip()


# -- --format json -----------------------------------------------------------------------------------------

def test_json_one_input_is_one_operation_outcome(env: PackageCache, invalid_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "--format", "json", "--lang", "en", str(invalid_file)], capsys)
    assert code == 1
    oo = json.loads(out)  # exactly one JSON document on stdout, nothing else
    check_outcome(oo, invalid_file)
    (card_min,) = issues_by_code(oo)["card-min"]
    assert card_min["severity"] == "error"
    assert card_min["code"] == "required"
    assert card_min["expression"] == ["Bundle.entry[0].resource.title"]
    # A missing element is located at its parent: the Composition, entry 0's "resource" member.
    assert card_min["location"] == [at(invalid_file.read_text(encoding="utf-8"), '"resource"')]
    for part in literal_parts(catalogue("en")["card-min"]):
        assert part in card_min["diagnostics"]
    assert "Composition.title" in card_min["diagnostics"]
    assert "COMP-TITLE" in {c["code"] for i in oo["issue"] for c in i["details"]["coding"]}


def test_json_valid_document(env: PackageCache, valid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "--format", "json", str(valid_file)], capsys)
    assert code == 0
    oo = json.loads(out)
    check_outcome(oo, valid_file)
    assert all(i["severity"] in ("warning", "information") for i in oo["issue"])
    against = [e["valueString"] for e in oo["extension"] if e["url"] == "urn:kroniker:validated-against"]
    assert against and against[0].startswith("medcom.fhir.dk.notes#1.0.")


def test_json_syntax_error_is_located(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "skadet.json"
    bad.write_text('{\n  "resourceType": "Bundle",\n  "type": ]\n}', encoding="utf-8")
    code, out, _ = run(["validate", "--format", "json", str(bad)], capsys)
    assert code == 2
    (issue,) = json.loads(out)["issue"]
    assert issue["severity"] == "fatal"
    assert issue["details"]["coding"][0] == {"system": FINDING_SYSTEM, "code": "json-syntax"}
    assert issue["location"] == ["3:11"]  # the "]" where the value of "type" should be


def test_json_several_inputs_are_a_bundle_in_order(env: PackageCache, valid_file: Path, invalid_file: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "findes-ikke.json"
    inputs = [invalid_file, valid_file, missing, invalid_file]
    code, out, _ = run(["validate", "--format", "json", *map(str, inputs)], capsys)
    assert code == 2
    bundle = json.loads(out)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert len(bundle["entry"]) == len(inputs)
    for entry, source in zip(bundle["entry"], inputs, strict=True):
        check_outcome(entry["resource"], source)
    severities = [{i["severity"] for i in e["resource"]["issue"]} for e in bundle["entry"]]
    assert "error" in severities[0] and "error" in severities[3]
    assert severities[1] <= {"warning", "information"}
    assert severities[2] == {"fatal"}


def test_json_two_valid_inputs_exit_0(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path, "a.json", shared_note())
    b = write(tmp_path, "b.json", shared_note(name="anden"), indent=None)
    code, out, _ = run(["validate", "--format", "json", str(a), str(b)], capsys)
    assert code == 0
    assert [e["resource"]["resourceType"] for e in json.loads(out)["entry"]] == ["OperationOutcome"] * 2


# -- languages -----------------------------------------------------------------------------------------------

def test_lang_da_and_en_differ(env: PackageCache, invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    diagnostics: dict[str, str] = {}
    for lang in ("da", "en"):
        code, out, _ = run(["validate", "--format", "json", "--lang", lang, str(invalid_file)], capsys)
        assert code == 1
        (issue,) = issues_by_code(json.loads(out))["card-min"]
        diagnostics[lang] = issue["diagnostics"]
        for part in literal_parts(catalogue(lang)["card-min"]):
            assert part in issue["diagnostics"], (lang, part)
    assert diagnostics["da"] != diagnostics["en"]
    assert "mangler" in diagnostics["da"] and "missing" in diagnostics["en"]


def test_lang_in_text_output(env: PackageCache, invalid_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {lang: run(["validate", "--lang", lang, str(invalid_file)], capsys)[1] for lang in ("da", "en")}
    assert outputs["da"] != outputs["en"]
    for lang, out in outputs.items():
        for key in ("text-head", "card-min"):
            for part in literal_parts(catalogue(lang)[key]):
                assert part in out, (lang, key, part)


def test_lang_from_environment(env: PackageCache, invalid_file: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KRONIKER_LANG", "da")
    _, out, _ = run(["validate", "--format", "json", str(invalid_file)], capsys)
    (issue,) = issues_by_code(json.loads(out))["card-min"]
    assert all(part in issue["diagnostics"] for part in literal_parts(catalogue("da")["card-min"]))


# -- folders -------------------------------------------------------------------------------------------------

def test_folder_validates_every_json_file_below_it(env: PackageCache, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "noter"
    files = [write(root, "a.json", shared_note()), write(root, "under/b.json", without_title()),
             write(root, "under/dybere/c.json", shared_note(name="c"))]
    (root / "README.txt").write_text("ikke et dokument", encoding="utf-8")
    (root / "under" / "noter.json.bak").write_text("{", encoding="utf-8")
    code, out, _ = run(["validate", "--format", "json", str(root)], capsys)
    assert code == 1  # b.json has an error; the .txt and .bak files are not read (they would be fatal)
    bundle = json.loads(out)
    sources = [e["valueString"] for entry in bundle["entry"] for e in entry["resource"]["extension"]
               if e["url"] == "urn:kroniker:source"]
    assert sorted(sources) == sorted(str(f) for f in files)


def test_folder_and_file_together(env: PackageCache, tmp_path: Path, valid_file: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mappe"
    write(folder, "x.json", shared_note(name="x"))
    code, out, _ = run(["validate", str(folder), str(valid_file)], capsys)
    assert code == 0
    assert str(folder / "x.json") in out and str(valid_file) in out


# -- the package cache ----------------------------------------------------------------------------------------

def test_cache_option_is_honoured(env: PackageCache, valid_file: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "tom-cache"
    empty.mkdir()
    # The environment names an empty cache; --cache names the real one, and wins.
    monkeypatch.setenv("KRONIKER_FHIR_PACKAGES", str(empty))
    code, out, _ = run(["validate", "--format", "json", str(valid_file)], capsys)
    assert code == 1
    assert "profile-unknown" in issues_by_code(json.loads(out))
    code, out, _ = run(["validate", "--format", "json", "--cache", str(env.root), str(valid_file)], capsys)
    assert code == 0, out
    # And the other way round: the environment has the packages, --cache an empty folder.
    monkeypatch.setenv("KRONIKER_FHIR_PACKAGES", str(env.root))
    code, out, _ = run(["validate", "--format", "json", "--cache", str(empty), str(valid_file)], capsys)
    assert code == 1
    assert "profile-unknown" in issues_by_code(json.loads(out))


# -- as a real process -----------------------------------------------------------------------------------------

def test_process_valid_document(package_cache: PackageCache, valid_file: Path, tmp_path: Path) -> None:
    proc = run_process(["validate", "--format", "json", str(valid_file)], package_cache.root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_outcome(json.loads(proc.stdout), valid_file)


def test_process_errors_and_unreadable(package_cache: PackageCache, invalid_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "skadet.json"
    bad.write_text("{", encoding="utf-8")
    proc = run_process(["validate", "--lang", "da", str(invalid_file)], package_cache.root, tmp_path)
    assert proc.returncode == 1
    assert all(p in proc.stdout for p in literal_parts(catalogue("da")["card-min"]))
    proc = run_process(["validate", "--format", "json", str(invalid_file), str(bad)], package_cache.root, tmp_path)
    assert proc.returncode == 2
    bundle = json.loads(proc.stdout)
    assert [e["resource"]["issue"][0]["severity"] for e in bundle["entry"]][1] == "fatal"


def test_process_usage_errors(package_cache: PackageCache, tmp_path: Path) -> None:
    for argv in ([], ["validate"], ["validate", "--nope", "x.json"]):
        proc = run_process(argv, package_cache.root, tmp_path)
        assert proc.returncode == 2, argv
        assert "usage" in proc.stderr.lower(), argv


def test_process_cache_option(package_cache: PackageCache, valid_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "tom-cache"
    empty.mkdir()
    proc = run_process(["validate", "--cache", str(package_cache.root), str(valid_file)], empty, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- bugs found here once (kept as regression tests) ------------------------------------------------------

@pytest.fixture
def surrogate_title(tmp_path: Path) -> Iterator[Path]:
    doc = shared_note()
    doc["entry"][0]["resource"]["title"] = "Journalnotat \ud800"
    path = tmp_path / "surrogat.json"
    path.write_text(json.dumps(doc), encoding="ascii")  # the escape \ud800: valid JSON, valid UTF-8
    yield path


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_lone_surrogate_in_a_message(package_cache: PackageCache, surrogate_title: Path, tmp_path: Path,
                                     fmt: str) -> None:
    proc = run_process(["validate", "--format", fmt, str(surrogate_title)], package_cache.root, tmp_path)
    assert proc.returncode == 1, proc.stderr
    if fmt == "json":
        # The broken title is a datatype error tied to COMP-TITLE (primary or second code).
        codes = {c["code"] for i in json.loads(proc.stdout)["issue"] for c in i["details"]["coding"]}
        assert "COMP-TITLE" in codes


def test_messages_do_not_show_python_none(env: PackageCache, invalid_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for lang in ("da", "en"):
        _, out, _ = run(["validate", "--format", "json", "--lang", lang, str(invalid_file)], capsys)
        for issue in json.loads(out)["issue"]:
            assert not re.search(r"\bNone\b", issue["diagnostics"]), issue["diagnostics"]
