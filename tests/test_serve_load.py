"""`kroniker serve --load`: documents shared on start as their authors' GP systems, a refused one reported with
its findings (and the server started all the same, or not with --strict), the package notes found by the
package's event code, and a second start with the same files changing nothing (issue 14, item 8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kroniker.clinical.content import Content
from kroniker.clinical.note import build_note
from kroniker.validators.packages import PackageCache
from tests.test_note import INPUT

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CODE = "https://kroniker.example/fhir/lbp/CodeSystem/care-package|lbp"  # the package code (README, profile)
BANNER = "kroniker reference server on"


@pytest.fixture(scope="module")
def cache(care_package_cache: PackageCache) -> PackageCache:
    return care_package_cache


def _start(cache: PackageCache, home: Path, *args: str) -> tuple[int, list[str]]:
    """Start `kroniker serve` with the arguments, read stderr to the banner (or the end), stop it: exit status
    and the lines before the banner."""
    env = {k: v for k, v in os.environ.items() if k not in ("KRONIKER_DATABASE", "KRONIKER_FHIR_PACKAGES")}
    env["KRONIKER_HOME"] = str(home)
    proc = subprocess.Popen([sys.executable, "-m", "kroniker", "serve", "--port", "0", "--cache", str(cache.root),
                             "--lang", "en", *args], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        for line in proc.stderr:
            if line.startswith(BANNER):
                proc.send_signal(signal.SIGTERM)
                break
            lines.append(line.rstrip("\n"))
        return proc.wait(timeout=60), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture()
def documents(tmp_path: Path, cache: PackageCache) -> tuple[Path, Path]:
    note = tmp_path / "lbp-note.json"
    note.write_text(json.dumps(build_note(INPUT, Content(cache)), ensure_ascii=False), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "document"}', encoding="utf-8")
    return note, bad


def test_load_shares_reports_refusals_and_finds_the_package_notes(tmp_path: Path, cache: PackageCache,
                                                                 documents: tuple[Path, Path]) -> None:
    note, bad = documents
    home = tmp_path / "home"
    args = ("--load", str(EXAMPLES), "--load", str(note), str(bad))
    code, lines = _start(cache, home, *args)
    assert code == 0, lines
    examples = len(list(EXAMPLES.glob("*.json")))
    assert f"kroniker serve --load: {examples + 1} document(s) loaded, 1 refused" in lines, lines
    assert any(ln.startswith(f"kroniker serve --load: {bad}: refused, ") for ln in lines), lines
    assert f"kroniker serve --load: 1 package note(s) loaded; found by the package's event code {CODE}: 1" \
        in lines, lines
    assert not any(INPUT["patient"]["cpr"] in ln for ln in lines)
    # Again, the same files: identical resubmissions (200), still one package note found, not two.
    code, again = _start(cache, home, *args)
    assert code == 0 and again == lines, again
    # Audited as the authors' GP systems: the note's clinic (tests/test_note.py INPUT) and the examples' own.
    import sqlite3

    with sqlite3.connect(home / "kroniker.db") as db:
        rows = db.execute("SELECT action, role, actor, actor_name, minlog FROM audit_events "
                          "WHERE actor_name = 'kroniker serve --load' ORDER BY seq").fetchall()
    submits = [r for r in rows if r[0] == "submit"]
    assert len(submits) == 2 * (examples + 1)  # both starts
    assert {r[1] for r in submits} == {"source"}
    assert f"sor:{INPUT['clinic']['sor']}" in {r[2] for r in submits}
    searches = [r for r in rows if r[0] == "search"]
    assert [(r[1], r[4]) for r in searches] == [("citizen", 0)] * 2  # the package search, once per start


def test_strict_refuses_to_start_when_a_document_is_refused(tmp_path: Path, cache: PackageCache,
                                                            documents: tuple[Path, Path]) -> None:
    _, bad = documents
    code, lines = _start(cache, tmp_path / "home", "--load", str(EXAMPLES), str(bad), "--strict")
    assert code == 1
    assert any(ln.startswith(f"kroniker serve --load: {bad}: refused, ") for ln in lines), lines
