"""Shared fixtures: MedCom's packages and examples from ../shared (read, never copied), a package cache."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kroniker.packages import Installer
from kroniker.validators.packages import PackageCache
from kroniker.validators.validate import Validator
from tests.postgres import drop_schema, new_schema, pg_reachable

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KRONIKER_SHARED", ROOT.parent / "shared")).resolve()
IN_CI = os.environ.get("CI", "").lower() == "true"


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the test when it is missing (fails in CI, where it must be there)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"{p} is not here: MedCom's packages and examples are read from ../shared"
        if IN_CI:
            pytest.fail(msg + " (CI=true: it must be)")
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session", autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session has its own KRONIKER_HOME and (empty) package cache, for subprocesses too: nothing
    falls back to the developer's ~/.kroniker or ~/.fhir, and no registry on the network is asked."""
    home = tmp_path_factory.mktemp("kroniker-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KRONIKER_HOME", str(home))
        mp.setenv("KRONIKER_FHIR_PACKAGES", str(tmp_path_factory.mktemp("no-packages")))
        mp.delenv("FHIR_PACKAGE_CACHE", raising=False)
        mp.setenv("KRONIKER_FHIR_REGISTRY", "http://127.0.0.1:1")  # refused at once: no network here
        yield home


@pytest.fixture(scope="session")
def package_dir() -> Path:
    return shared_path("fhir-packages")


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return shared_path("medcom-examples")


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory: pytest.TempPathFactory, package_dir: Path) -> PackageCache:
    """A FHIR package cache holding every package in ../shared/fhir-packages (installed as a user would)."""
    cache = PackageCache(tmp_path_factory.mktemp("fhir-packages"))
    Installer(cache, registries=[]).install([str(package_dir)])
    return cache


@pytest.fixture(scope="session")
def care_package_cache(tmp_path_factory: pytest.TempPathFactory, package_dir: Path) -> PackageCache:
    """MedCom's packages and kroniker's care package beside them, installed by the public commands as a vendor
    would (`kroniker packages install`, `kroniker package build`, `kroniker packages install dist --no-deps`).
    One for the session: the tests read it and never install into it."""
    from tests.clinical_support import install_packages

    root = tmp_path_factory.mktemp("care-packages")
    Installer(PackageCache(root / "cache"), registries=[]).install([str(package_dir)])
    install_packages(root / "cache", root / "dist")
    return PackageCache(root / "cache")


@pytest.fixture(scope="session")
def validator(package_cache: PackageCache) -> Validator:
    return Validator(package_cache)


# What a user's environment may set that changes what the `kroniker` command does.
ENV_KNOBS = ("KRONIKER_FHIR_PACKAGES", "FHIR_PACKAGE_CACHE", "KRONIKER_LANG", "KRONIKER_MAX_BYTES",
             "KRONIKER_MAX_DEPTH", "KRONIKER_MAX_ELEMENTS", "KRONIKER_MAX_XML_ATTRIBUTES", "KRONIKER_MAX_FINDINGS",
             "KRONIKER_MAX_FINDINGS_PER_CODE", "KRONIKER_DEBUG")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, package_cache: PackageCache) -> PackageCache:
    """The package cache from the environment, as a user has it; nothing else of theirs leaks in."""
    for name in ENV_KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRONIKER_FHIR_PACKAGES", str(package_cache.root))
    return package_cache


@pytest.fixture
def empty_cache(tmp_path: Path) -> Iterator[PackageCache]:
    cache = PackageCache(tmp_path / "cache")
    yield cache
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- databases: SQLite always, PostgreSQL where it runs (in CI it must) -----------------------------------

@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; skips (fails in CI) without PostgreSQL."""
    why = pg_reachable()
    if why:
        if IN_CI:
            pytest.fail(why + " (CI=true: PostgreSQL must be there)")
        pytest.skip(why)
    schema, url = new_schema("kroniker_test_")
    try:
        yield url
    finally:
        drop_schema(schema)


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (for tests that are about PostgreSQL itself)."""
    schema, url = new_schema("k_")
    try:
        yield url
    finally:
        drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL (a fresh database for each test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'kroniker.db'}"
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) when PostgreSQL is not there
    schema, url = new_schema("k_")
    request.addfinalizer(lambda: drop_schema(schema))
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           package_cache: PackageCache) -> Iterator[Any]:
    """The reference server over HTTP for a test module, once on SQLite and once on PostgreSQL."""
    from tests import server_support

    with server_support.server_for(request, tmp_path_factory, package_cache) as srv:
        yield srv


def pytest_bdd_apply_tag(tag: str, function: Any) -> bool | None:
    """The conformance suite's tags (`@krav:<requirement id>`, `@dokument`) are data for kroniker.conformance,
    not pytest markers."""
    if tag.startswith("krav:") or tag == "dokument":
        return True
    return None
