"""The engine is pure (ARCHITECTURE.md: bytes in, findings out): it reads no environment variable, needs no
network library, keeps nothing that differs between Validators in module globals, and writes compiled plans
only where and when its caller says."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kroniker.packages import Installer
from kroniker.validators.packages import PackageCache
from kroniker.validators.profiles import PlanStore
from kroniker.validators.source import DEFAULT_MAX_BYTES, Limits
from kroniker.validators.validate import Validator
from tests.builders import shared_note

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "validators"
NOTES_COMPOSITION = "http://medcomfhir.dk/ig/notes/StructureDefinition/medcom-notes-composition"


def _engine_sources() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def test_engine_sources_read_no_environment_variable() -> None:
    found = []
    for path in _engine_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                    any(a.name in ("environ", "getenv") for a in node.names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_engine_imports_no_network_client_and_no_front() -> None:
    found = []
    for path in _engine_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.split(".")[0] in ("httpx", "urllib3", "requests", "starlette", "sqlalchemy", "jwt") or \
                        name in ("kroniker.cli", "kroniker.packages", "kroniker.settings", "kroniker.batch") or \
                        name.startswith("kroniker.reference_server"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


@pytest.fixture
def big_note(tmp_path: Path) -> Path:
    """A valid-looking note of 2,000 bytes or more."""
    path = tmp_path / "note.json"
    path.write_text(json.dumps(shared_note()), encoding="utf-8")
    assert path.stat().st_size > 2000
    return path


def test_a_limit_in_the_environment_does_not_reach_a_validator_built_directly(
        package_cache: PackageCache, big_note: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONIKER_MAX_BYTES", "1000")
    validator = Validator(package_cache)
    assert validator.limits.max_bytes == DEFAULT_MAX_BYTES
    assert "too-large" not in {f.code for f in validator.validate(big_note).findings}
    # The same limit given explicitly is obeyed.
    assert "too-large" in {f.code for f in Validator(package_cache, Limits(max_bytes=1000)).validate(big_note).findings}


def test_a_limit_in_the_environment_reaches_the_command(package_cache: PackageCache, big_note: Path,
                                                        tmp_path: Path) -> None:
    env = {**os.environ, "KRONIKER_FHIR_PACKAGES": str(package_cache.root), "KRONIKER_HOME": str(tmp_path / "h"),
           "KRONIKER_LANG": "en"}
    env.pop("KRONIKER_MAX_BYTES", None)
    cmd = [sys.executable, "-m", "kroniker", "validate", "--format", "json", str(big_note)]
    plain = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    limited = subprocess.run(cmd, env={**env, "KRONIKER_MAX_BYTES": "1000"}, capture_output=True, text=True,
                             timeout=120)
    assert plain.returncode in (0, 1), plain.stderr
    assert "too-large" not in plain.stdout
    assert limited.returncode == 2  # unreadable input: over the limit
    assert "too-large" in limited.stdout


def test_validators_with_different_package_caches_do_not_see_each_others_profiles(
        package_cache: PackageCache, package_dir: Path, tmp_path: Path) -> None:
    """One process, two Validators: one with MedCom's packages, one with a cache lacking the Notes package.
    Each answers as its own cache says, whichever is asked first and whichever compiled what."""
    partial = PackageCache(tmp_path / "partial")
    Installer(partial, registries=[]).install(
        [str(p) for p in sorted(package_dir.glob("*.tgz")) if not p.name.startswith("medcom.fhir.dk.notes-")],
        with_dependencies=False)
    assert partial.versions("medcom.fhir.dk.notes") == []
    full, lacking = Validator(package_cache), Validator(partial)
    note = json.dumps(shared_note()).encode()
    for first, second in ((full, lacking), (lacking, full), (full, lacking)):
        first.validate(note)
        second.validate(note)
    full_report, lacking_report = full.validate(note), lacking.validate(note)
    assert full_report.standard is not None and full_report.standard.name == "medcom.fhir.dk.notes"
    assert lacking_report.standard is None or lacking_report.standard.name != "medcom.fhir.dk.notes"
    assert lacking_report.findings != full_report.findings
    # Neither Validator holds the other's compiled profiles.
    full_sets = {id(ps) for ps in full._profile_sets.values()}
    lacking_sets = {id(ps) for ps in lacking._profile_sets.values()}
    assert full_sets and not full_sets & lacking_sets
    assert any(ps.structure(NOTES_COMPOSITION) is not None for ps in full._profile_sets.values())
    assert all(not ps.knows(NOTES_COMPOSITION) for ps in lacking._profile_sets.values())


def test_plans_are_written_only_by_save_plans_and_only_to_the_store_given(
        package_cache: PackageCache, tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans")
    note = json.dumps(shared_note()).encode()
    validator = Validator(package_cache, plans=store)
    validator.validate(note)
    assert not (tmp_path / "plans").exists()  # validating writes nothing
    validator.save_plans()
    written = sorted((tmp_path / "plans").glob("*.pickle"))
    assert written
    stamps = [p.stat().st_mtime_ns for p in written]
    validator.save_plans()  # nothing new compiled: nothing written
    assert [p.stat().st_mtime_ns for p in written] == stamps
    # A fresh Validator on the same store starts from the plans, and gives the same findings.
    again = Validator(package_cache, plans=store)
    assert again.validate(note).findings == validator.validate(note).findings
    assert any(ps.loaded_from_disk for ps in again._profile_sets.values())
    # Without a store, nothing is read or written anywhere.
    shutil.rmtree(tmp_path / "plans")
    Validator(package_cache).validate(note)
    assert not (tmp_path / "plans").exists()


def test_a_broken_plan_is_compiled_again(package_cache: PackageCache, tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans")
    note = json.dumps(shared_note()).encode()
    first = Validator(package_cache, plans=store)
    expected = first.validate(note).findings
    first.save_plans()
    for plan in (tmp_path / "plans").glob("*.pickle"):
        plan.write_bytes(b"not a pickle")
    again = Validator(package_cache, plans=store)
    assert again.validate(note).findings == expected
    assert not any(ps.loaded_from_disk for ps in again._profile_sets.values())


def test_the_plan_key_changes_with_profiles_data(package_cache: PackageCache, tmp_path: Path) -> None:
    """A plan depends on profiles/ (value sets, code systems, rules) and the engine's code: a changed file there
    gives a new key in a new process, so an old plan is not used."""
    script = "from kroniker.validators.profiles import plan_key; print(plan_key(None))"
    before = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    target = sorted((ROOT / "profiles" / "valuesets").glob("*.json"))[0]
    stat = target.stat()
    try:
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        after = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    finally:
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert before.strip() and after.strip() and before != after
