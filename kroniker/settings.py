"""What the environment says to the engine, read once by the front (the CLI, the server): the package cache,
the limits on input and work, and where compiled plans are kept. The engine itself reads no environment.

- KRONIKER_HOME (default ~/.kroniker): kroniker's own folder; compiled plans in plans/, the server's data.
- KRONIKER_FHIR_PACKAGES, else FHIR_PACKAGE_CACHE (default ~/.fhir/packages): the FHIR package cache.
- KRONIKER_FHIR_REGISTRY (default packages.fhir.org): where `packages install NAME#VERSION` downloads from.
- KRONIKER_NO_PLAN_CACHE: when set, profiles are compiled in every process and no plan is kept on disk.
- KRONIKER_MAX_BYTES, _MAX_DEPTH, _MAX_NOTE_BYTES, _MAX_ELEMENTS, _MAX_XML_ATTRIBUTES, _MAX_FINDINGS,
  _MAX_FINDINGS_PER_CODE: the validator's limits (validators/source.py has the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kroniker.validators.packages import STANDARD_CACHE_DIR
from kroniker.validators.profiles import PlanStore
from kroniker.validators.source import Limits

_LIMITS = {
    "max_bytes": "KRONIKER_MAX_BYTES",
    "max_depth": "KRONIKER_MAX_DEPTH",
    "max_note_bytes": "KRONIKER_MAX_NOTE_BYTES",
    "max_elements": "KRONIKER_MAX_ELEMENTS",
    "max_xml_attributes": "KRONIKER_MAX_XML_ATTRIBUTES",
    "max_findings": "KRONIKER_MAX_FINDINGS",
    "max_findings_per_code": "KRONIKER_MAX_FINDINGS_PER_CODE",
}


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def home(environ: Mapping[str, str] | None = None) -> Path:
    """$KRONIKER_HOME, else ~/.kroniker."""
    return Path(_env(environ).get("KRONIKER_HOME") or "~/.kroniker").expanduser()


def package_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$KRONIKER_FHIR_PACKAGES, else $FHIR_PACKAGE_CACHE, else the standard ~/.fhir/packages."""
    env = _env(environ)
    return Path(env.get("KRONIKER_FHIR_PACKAGES") or env.get("FHIR_PACKAGE_CACHE") or STANDARD_CACHE_DIR).expanduser()


def registries(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """$KRONIKER_FHIR_REGISTRY as the one registry; None for the installer's defaults (packages.fhir.org)."""
    chosen = _env(environ).get("KRONIKER_FHIR_REGISTRY")
    return [chosen] if chosen else None


def limits(environ: Mapping[str, str] | None = None) -> Limits:
    """The validator's limits: the defaults, each replaceable by its variable (a whole number; else ignored)."""
    env = _env(environ)
    given = {field: int(raw) for field, name in _LIMITS.items() if (raw := env.get(name, "").strip()).isdigit()}
    return Limits(**given)


def plan_store(environ: Mapping[str, str] | None = None) -> PlanStore | None:
    """Compiled plans in $KRONIKER_HOME/plans; None when KRONIKER_NO_PLAN_CACHE is set."""
    if _env(environ).get("KRONIKER_NO_PLAN_CACHE"):
        return None
    return PlanStore(home(environ) / "plans")
