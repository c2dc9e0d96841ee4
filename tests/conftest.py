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
