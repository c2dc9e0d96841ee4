"""Shared fixtures: MedCom's packages and examples from ../shared (read, never copied), a package cache."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kroniker.validators.packages import Installer, PackageCache
from kroniker.validators.validate import Validator

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
def validator(package_cache: PackageCache) -> Validator:
    return Validator(package_cache)


@pytest.fixture
def empty_cache(tmp_path: Path) -> Iterator[PackageCache]:
    cache = PackageCache(tmp_path / "cache")
    yield cache
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- databases: SQLite always, PostgreSQL where it runs (in CI it must) -----------------------------------

PG_URL = os.environ.get("KRONIKER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers; else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure to connect means: not here
        return f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; skips (fails in CI) without PostgreSQL."""
    why = _pg_reachable()
    if why:
        if IN_CI:
            pytest.fail(why + " (CI=true: PostgreSQL must be there)")
        pytest.skip(why)
    schema, url = _new_schema("kroniker_test_")
    try:
        yield url
    finally:
        _drop_schema(schema)


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (for tests that are about PostgreSQL itself)."""
    schema, url = _new_schema("k_")
    try:
        yield url
    finally:
        _drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL (a fresh database for each test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'kroniker.db'}"
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) when PostgreSQL is not there
    schema, url = _new_schema("k_")
    request.addfinalizer(lambda: _drop_schema(schema))
    return url


def _new_schema(prefix: str) -> tuple[str, str]:
    """A new schema in the test database: (its name, a database URL that works in it)."""
    import uuid

    import psycopg

    schema = f"{prefix}{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           package_cache: PackageCache) -> Iterator[Any]:
    """The reference server over HTTP for a test module, once on SQLite and once on PostgreSQL."""
    from tests import server_support

    with server_support.server_for(request, tmp_path_factory, package_cache) as srv:
        yield srv
