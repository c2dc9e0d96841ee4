"""`kroniker validate` for CI and reviewers: JUnit XML and HTML reports, each naming what it validated against;
batches of folders, glob patterns and standard input, in several processes, with a summary line."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from kroniker import __version__
from kroniker.validators.packages import PackageCache
from kroniker.validators.validate import Validator
from tests.builders import diagnosis_card, shared_note
from tests.conftest import ENV_KNOBS
from tests.test_cli import at, catalogue, literal_parts, run, without_title, write

EVIL_TITLE = "</td><script>alert(1)</script>"
UNKNOWN_EXTENSION = {"url": "http://example.org/fhir/StructureDefinition/ukendt", "valueString": "x"}


def process(argv: list[str], cache: Path, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
    environ["KRONIKER_FHIR_PACKAGES"] = str(cache)
    proc = subprocess.run([sys.executable, "-m", "kroniker", *argv], capture_output=True, input=stdin,
                          env=environ, cwd=cwd, timeout=180)
    assert b"Traceback" not in proc.stdout + proc.stderr, proc.stderr.decode()
    return proc


def with_warning() -> dict[str, Any]:
    """A valid note with one warning: an extension from no installed package cannot be checked offline."""
    doc = shared_note(name="advarsel")
    doc["entry"][0]["resource"]["extension"] = [UNKNOWN_EXTENSION]
    return doc


def evil_note() -> dict[str, Any]:
    doc = shared_note(name="ond")
    doc["entry"][0]["resource"]["title"] = EVIL_TITLE
    return doc


@pytest.fixture
def batch(tmp_path: Path) -> list[Path]:
    """Four documents in the order a user names them: an error, valid, a warning, unreadable."""
    bad = tmp_path / "skadet.json"
    bad.write_text('{\n  "resourceType": "Bundle",\n  "type": ]\n}', encoding="utf-8")
    return [write(tmp_path, "uden-titel.json", without_title()), write(tmp_path, "gyldig.json", shared_note()),
            write(tmp_path, "advarsel.json", with_warning()), bad]


def oo_issues(out: str) -> list[list[dict[str, Any]]]:
    doc = json.loads(out)
    outcomes = [doc] if doc["resourceType"] == "OperationOutcome" else [e["resource"] for e in doc["entry"]]
    return [oo["issue"] for oo in outcomes]


def expected_packages(cache: PackageCache, standard: str) -> dict[str, str]:
    """The standard's package and those of its dependencies that are installed, with their sha256."""
    name, version = standard.split("#")
    root = cache.get(name, version)
    assert root is not None
    out = {f"{root.name}#{root.version}": root.sha256}
    for dep_name, dep_version in root.dependencies.items():
        dep = cache.get(dep_name, dep_version)
        if dep is not None:
            out[f"{dep.name}#{dep.version}"] = dep.sha256
    return out


# -- JUnit -------------------------------------------------------------------------------------------------

def test_junit_has_a_testcase_per_document_and_the_right_counts(env: PackageCache, batch: list[Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "--format", "junit", "--lang", "en", *map(str, batch)], capsys)
    assert code == 2  # the unreadable document
    root = ET.fromstring(out.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for el in (root, suite):
        assert (el.get("tests"), el.get("failures"), el.get("errors")) == ("4", "1", "1")
        assert float(el.get("time", "x")) >= 0
    datetime.fromisoformat(suite.get("timestamp", "x"))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [str(p) for p in batch]
    assert all(float(c.get("time", "x")) >= 0 for c in cases)

    # As many failures as the OperationOutcome has errors, for each document.
    _, json_out, _ = run(["validate", "--format", "json", "--lang", "en", *map(str, batch)], capsys)
    for case, issues in zip(cases, oo_issues(json_out), strict=True):
        errors = [i for i in issues if i["severity"] == "error"]
        failures = case.findall("failure")
        assert len(failures) == len(errors)
        assert [f.get("message") for f in failures] == [i["diagnostics"] for i in errors]
        assert len(case.findall("error")) == sum(i["severity"] == "fatal" for i in issues)
    uden_titel, gyldig, advarsel, skadet = cases
    assert {f.get("type") for f in uden_titel.findall("failure")} >= {"card-min"}
    assert gyldig.find("failure") is None and gyldig.find("error") is None
    assert advarsel.find("failure") is None
    assert "extension-unknown" in (advarsel.findtext("system-out") or "")
    assert skadet.find("error").get("type") == "json-syntax"  # type: ignore[union-attr]


def test_junit_survives_markup_and_control_characters(env: PackageCache, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    doc = shared_note(name="styrekoder")
    doc["entry"][0]["resource"]["title"] = EVIL_TITLE + "\u0001]]>"
    # A file name that is not UTF-8 reaches Python as a lone surrogate, which XML cannot hold either.
    path = Path(os.fsdecode(bytes(tmp_path) + b"/styrekoder-\xff.json"))
    path.write_text(json.dumps(doc), encoding="ascii")  # \u0001 as a JSON escape
    code, out, _ = run(["validate", "--format", "junit", str(path)], capsys)
    assert code == 1
    root = ET.fromstring(out.encode("utf-8"))  # still well-formed XML
    messages = [f.get("message") or "" for f in root.iter("failure")]
    assert any(EVIL_TITLE + "\\x01]]>" in m for m in messages), messages
    (case,) = root.iter("testcase")
    assert case.get("name") == str(tmp_path / "styrekoder-\\udcff.json")


# -- HTML --------------------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def test_html_is_self_contained_and_escapes_the_input(env: PackageCache, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ond.json", evil_note())
    code, page, _ = run(["validate", "--format", "html", "--lang", "en", str(path)], capsys)
    assert code == 1
    found = tags(page)
    assert "script" not in {t for t, _ in found}
    assert "<script" not in page.lower() and EVIL_TITLE not in page
    assert "&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for tag, attrs in found:
        for name in ("src", "href", "srcset", "action", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag not in ("link", "img", "iframe", "object", "embed", "base"), tag
    assert not re.search(r"@import|url\(|https?://(?!medcomfhir\.dk|hl7\.org|example\.org)", page, re.I)
    assert [a for t, a in found if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]


def test_html_shows_the_snippet_with_line_numbers(env: PackageCache, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ond.json", evil_note())
    text = path.read_text(encoding="utf-8")
    line, column = map(int, at(text, '"title"').split(":"))
    _, page, _ = run(["validate", "--format", "html", "--lang", "en", str(path)], capsys)
    assert f"line {line}, column {column}" in page
    snippet = re.search(r'<pre class="snippet">(.*?)</pre>', page, re.S)
    assert snippet, page
    numbers = [int(n) for n in re.findall(r'<span class="ln">(\d+)</span>', snippet[1])]
    assert numbers == list(range(line - 2, line + 3))
    focus = re.search(r'<span class="row focus">(.*?)</span>(?=<span class="row|$)', snippet[1], re.S)
    assert focus and "&lt;script&gt;alert(1)&lt;/script&gt;" in focus[1]
    # Findings are grouped by resource: the Composition's heading names it.
    comp = evil_note()["entry"][0]["resource"]
    assert f"Composition/{comp['id']}" in page


def test_html_minified_input_shows_a_window_not_the_whole_line(env: PackageCache, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kompakt.json", evil_note(), indent=None)
    _, page, _ = run(["validate", "--format", "html", str(path)], capsys)
    (snippet,) = re.findall(r'<pre class="snippet">(.*?)</pre>', page, re.S)
    assert '<span class="ln">1</span>' in snippet
    assert len(snippet) < 1000 < path.stat().st_size
    assert '<span class="cut">…</span>' in snippet


def test_html_in_danish(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "uden-titel.json", without_title())
    pages = {lang: run(["validate", "--format", "html", "--lang", lang, str(path)], capsys)[1] for lang in ("da", "en")}
    assert '<html lang="da">' in pages["da"]
    for lang, page in pages.items():
        cat = catalogue(lang)
        assert cat["report-title"] in page and cat["sev-error"] in page
        for part in literal_parts(cat["card-min"]):
            assert part in page, (lang, part)
    assert pages["da"] != pages["en"]


# -- what was validated against ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json", "junit", "html"])
def test_every_format_names_the_packages_with_hashes_and_kronikers_version(
        env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    note = write(tmp_path, "notat.json", shared_note())
    card = write(tmp_path, "diagnoser.json", diagnosis_card())
    code, out, _ = run(["validate", "--format", fmt, str(note), str(card)], capsys)
    assert code == 0, out
    wanted = expected_packages(env, "medcom.fhir.dk.notes#1.0.0") | expected_packages(
        env, "medcom.fhir.dk.conditionlist#1.0.1")
    assert len(wanted) >= 6
    for package, sha in wanted.items():
        assert package in out and sha in out, (package, fmt)
        # The hash is given with its package, not somewhere else on the page.
        near = re.search(re.escape(package) + r"[^\n]{0,200}" + sha, out, re.S) or re.search(
            re.escape(package) + r'</td><td class="mono hash">' + sha, out)
        assert near, (package, fmt)
    assert __version__ in out
    if fmt == "json":
        for entry in json.loads(out)["entry"]:
            ext = {e["url"]: e["valueString"] for e in entry["resource"]["extension"]}
            assert ext["urn:kroniker:validator"] == f"kroniker {__version__}"
    if fmt == "junit":
        props = {p.get("name"): p.get("value") for p in ET.fromstring(out.encode()).find("testsuite/properties")}
        assert props["kroniker.version"] == __version__
        assert all(props[f"package:{p}"] == f"sha256:{sha}" for p, sha in wanted.items())


# -- batches: folders, patterns, standard input -----------------------------------------------------------------

def sources(out: str) -> list[str]:
    doc = json.loads(out)
    outcomes = [doc] if doc["resourceType"] == "OperationOutcome" else [e["resource"] for e in doc["entry"]]
    return [e["valueString"] for oo in outcomes for e in oo["extension"] if e["url"] == "urn:kroniker:source"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "eksport"
    write(root, "b.json", shared_note(name="b"))
    write(root, "a/a.json", shared_note(name="a"))
    write(root, "a/dybt/c.JSON", shared_note(name="c"))
    (root / "a" / "d.xml").write_text('<Bundle xmlns="http://hl7.org/fhir"/>', encoding="utf-8")
    (root / "noter.txt").write_text("ikke et dokument", encoding="utf-8")
    return root


def test_folder_takes_json_and_xml_below_it_in_order(env: PackageCache, tree: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["validate", "--format", "json", str(tree)], capsys)
    assert sources(out) == [str(tree / p) for p in ("a/a.json", "a/d.xml", "a/dybt/c.JSON", "b.json")]


def test_glob_patterns_are_expanded_recursively(env: PackageCache, tree: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "--format", "json", str(tree / "**" / "*.json")], capsys)
    assert code == 0
    assert sources(out) == [str(tree / "a/a.json"), str(tree / "b.json")]
    code, out, _ = run(["validate", "--format", "json", str(tree / "?.json")], capsys)
    assert code == 0 and sources(out) == [str(tree / "b.json")]
    # A pattern matching a folder takes the folder's documents.
    _, out, _ = run(["validate", "--format", "json", str(tree / "[a]")], capsys)
    assert sources(out) == [str(tree / p) for p in ("a/a.json", "a/d.xml", "a/dybt/c.JSON")]


def test_a_pattern_that_matches_nothing_is_reported(env: PackageCache, tree: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(tree / "**" / "*.jsn")
    code, out, _ = run(["validate", "--format", "json", str(tree / "b.json"), pattern], capsys)
    assert code == 2
    assert sources(out) == [str(tree / "b.json"), pattern]
    (issue,) = oo_issues(out)[1]
    assert issue["severity"] == "fatal" and issue["details"]["coding"][0]["code"] == "unreadable"
    assert catalogue("en")["glob-no-match"] in issue["diagnostics"]
    code, out, _ = run(["validate", "--lang", "da", pattern], capsys)
    assert code == 2 and pattern in out and catalogue("da")["glob-no-match"] in out


def test_a_file_named_like_a_pattern_is_that_file(env: PackageCache, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "notat[1].json", shared_note())
    code, out, _ = run(["validate", "--format", "json", str(path)], capsys)
    assert code == 0 and sources(out) == [str(path)]


def test_standard_input(env: PackageCache, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    data = json.dumps(without_title(), indent=2).encode("utf-8")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    valid = write(tmp_path, "gyldig.json", shared_note())
    code, out, _ = run(["validate", "--format", "json", str(valid), "-"], capsys)
    assert code == 1
    assert sources(out) == [str(valid), "<stdin>"]
    card_min = [i for i in oo_issues(out)[1] if i["details"]["coding"][0]["code"] == "card-min"]
    assert card_min and card_min[0]["location"] == [at(data.decode(), '"resource"')]


def test_standard_input_only_once(env: PackageCache, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "-", "-"], capsys)
    assert code == 2 and not out and "-" in err


def test_process_reads_standard_input(package_cache: PackageCache, tmp_path: Path) -> None:
    data = json.dumps(evil_note()).encode("utf-8")
    proc = process(["validate", "--format", "junit", "-"], package_cache.root, tmp_path, stdin=data)
    assert proc.returncode == 1, proc.stderr
    (case,) = ET.fromstring(proc.stdout).iter("testcase")
    assert case.get("name") == "<stdin>" and case.findall("failure")
    proc = process(["validate", "-"], package_cache.root, tmp_path, stdin=b"{")
    assert proc.returncode == 2 and b"json-syntax" in proc.stdout


# -- several processes ------------------------------------------------------------------------------------------

def _without_times(out: str) -> str:
    out = re.sub(r'(time|timestamp)="[^"]*"', r'\1=""', out)
    out = re.sub(r"\(\d+[.,]\d+ s\)", "(s)", out)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^ <]*", "T", out)


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "html"])
def test_jobs_2_gives_the_same_reports_in_the_same_order(env: PackageCache, batch: list[Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    inputs = [*map(str, batch), str(tmp_path / "findes-ikke.json"), str(batch[0])]
    one = run(["validate", "--format", fmt, "--jobs", "1", *inputs], capsys)
    two = run(["validate", "--format", fmt, "--jobs", "2", *inputs], capsys)
    assert one[0] == two[0] == 2
    assert _without_times(one[1]) == _without_times(two[1])
    assert _without_times(one[2]) == _without_times(two[2])


def test_process_jobs(package_cache: PackageCache, batch: list[Path], tmp_path: Path) -> None:
    argv = ["validate", "--format", "json", *map(str, batch[:3])]
    one = process([*argv, "--jobs", "1"], package_cache.root, tmp_path)
    many = process([*argv, "--jobs", "3"], package_cache.root, tmp_path)
    assert one.returncode == many.returncode == 1
    assert one.stdout == many.stdout
    assert sources(many.stdout.decode()) == [str(p) for p in batch[:3]]
    assert b"%|" not in many.stderr  # no progress bar when nobody watches a terminal


def test_jobs_with_xml_input(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An XML document is located through the reader's own locator, which need not pickle: the worker must
    # hand back its positions and snippets, not the locator.
    xml = tmp_path / "kort.xml"
    xml.write_text('<Bundle xmlns="http://hl7.org/fhir">\n  <type value="document"/>\n</Bundle>\n', encoding="utf-8")
    inputs = [str(xml), str(write(tmp_path, "gyldig.json", shared_note())), str(xml)]
    one = run(["validate", "--format", "json", "--jobs", "1", *inputs], capsys)
    two = run(["validate", "--format", "json", "--jobs", "2", *inputs], capsys)
    assert one[:2] == two[:2]
    assert any("location" in issue for issue in oo_issues(two[1])[2])
    html_one = run(["validate", "--format", "html", "--jobs", "1", *inputs], capsys)[1]
    html_two = run(["validate", "--format", "html", "--jobs", "2", *inputs], capsys)[1]
    assert _without_times(html_one) == _without_times(html_two)
    assert "&lt;type value=&#34;document&#34;/&gt;" in html_two


def test_report_pickles_small_and_keeps_positions_and_snippets(validator: Validator, tmp_path: Path) -> None:
    path = write(tmp_path, "uden-titel.json", without_title())
    report = validator.validate(path)
    assert report._locate is not None
    detached = pickle.loads(pickle.dumps(report.detached()))
    assert detached._locate is None and detached._text is None
    (card_min,) = [f for f in detached.findings if f.code == "card-min"]
    assert f"{card_min.line}:{card_min.column}" == at(path.read_text(encoding="utf-8"), '"resource"')
    snippet = detached.snippet(card_min)
    assert snippet is not None and snippet.line == card_min.line
    assert len(pickle.dumps(detached)) < path.stat().st_size


# -- the summary line and exit statuses -------------------------------------------------------------------------

def summary_pattern(lang: str) -> re.Pattern[str]:
    template = catalogue(lang)["summary"]
    pattern = re.escape(template)
    for name in ("documents", "valid", "errors", "warnings"):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>\\d+)")
    return re.compile(pattern.replace(re.escape("{seconds:.2f}"), r"\d+\.\d\d"))


@pytest.mark.parametrize("lang", ["da", "en"])
def test_summary_line_at_the_end(env: PackageCache, batch: list[Path], capsys: pytest.CaptureFixture[str],
                                 lang: str) -> None:
    code, out, _ = run(["validate", "--lang", lang, *map(str, batch)], capsys)
    assert code == 2
    last = out.rstrip("\n").splitlines()[-1]
    m = summary_pattern(lang).fullmatch(last)
    assert m, last
    assert {k: int(v) for k, v in m.groupdict().items()} == {"documents": 4, "valid": 2, "errors": 2, "warnings": 1}
    # The formats a program reads keep stdout to themselves: the summary goes to stderr.
    code, out, err = run(["validate", "--lang", lang, "--format", "junit", *map(str, batch)], capsys)
    ET.fromstring(out.encode())
    assert summary_pattern(lang).fullmatch(err.strip().splitlines()[-1])


def test_exit_statuses(env: PackageCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    valid = [write(tmp_path, f"ok/{n}.json", shared_note(name=n)) for n in ("a", "b")]
    warned = write(tmp_path, "ok/c.json", with_warning())
    invalid = write(tmp_path, "fejl.json", without_title())
    for fmt in ("text", "json", "junit", "html"):
        assert run(["validate", "--format", fmt, "--jobs", "2", str(tmp_path / "ok")], capsys)[0] == 0
        assert run(["validate", "--format", fmt, str(valid[0]), str(warned), str(invalid)], capsys)[0] == 1
        assert run(["validate", "--format", fmt, str(invalid), str(tmp_path / "ingen" / "*.json")], capsys)[0] == 2
    for argv in (["--jobs", "-1"], ["--jobs", "to"], ["--format", "pdf"]):
        code, _, err = run(["validate", *argv, str(valid[0])], capsys)
        assert code == 2 and "usage" in err.lower()


def test_progress_bar_only_on_a_terminal(package_cache: PackageCache, batch: list[Path], tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    fcntl, termios = pytest.importorskip("fcntl"), pytest.importorskip("termios")
    environ = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
    environ["KRONIKER_FHIR_PACKAGES"] = str(package_cache.root)
    leader, follower = pty.openpty()
    # A terminal of 100 columns (a new pseudo-terminal has none, and a bar of width 0 is not drawn).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    argv = [sys.executable, "-m", "kroniker", "validate", "--lang", "en", *map(str, batch[:3])]
    with subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=environ,
                          cwd=tmp_path) as proc:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=180) == 1
    os.close(leader)
    assert catalogue("en")["progress-desc"].encode() + b":" in seen and b"0/3" in seen
    assert summary_pattern("en").search(seen.decode("utf-8"))
