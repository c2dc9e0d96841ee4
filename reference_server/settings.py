"""The server's settings: one object, built from the environment or given by tests; no global state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kroniker import settings as front
from kroniker.validators.profiles import PlanStore
from kroniker.validators.source import Limits


def default_home() -> Path:
    return front.home()


@dataclass(frozen=True)
class Settings:
    """Where the data lives and how the server behaves."""

    home: Path = field(default_factory=default_home)
    database_url: str | None = None  # default: SQLite in home
    package_cache: Path | None = None  # default: the FHIR package cache (~/.fhir/packages)
    validator_limits: Limits = field(default_factory=Limits)  # the validator's (KRONIKER_MAX_BYTES, …)
    plan_cache: bool = True  # keep compiled plans in home/plans (KRONIKER_NO_PLAN_CACHE switches it off)
    # Limits on what a request may carry, checked before anything is parsed (docs/server.md, "Limits").
    max_request_bytes: int = 10 * 1024 * 1024  # a document (POST /fhir/Bundle)
    max_small_body_bytes: int = 64 * 1024  # the JSON of /blocks, /admin/relations and PATCH; a _search form
    max_query_bytes: int = 8 * 1024  # the query string (or a _search form) before it is split
    max_query_params: int = 64  # parameters in one request
    max_param_repeats: int = 16  # occurrences of one parameter
    max_param_values: int = 32  # comma-separated values in one occurrence
    max_json_depth: int = 8  # nesting of a JSON body other than a document (the validator bounds documents)
    # The longest a bearer token may live (exp minus now, and exp minus iat): a stolen token is good for this long
    # at most, and `kroniker token` will not make a longer one.
    max_token_lifetime: int = 24 * 3600
    page_size: int = 50
    max_page_size: int = 500
    base_url: str = ""  # the public base of absolute URLs; default: taken from each request
    # Submissions one worker process validates and stores at once. Validation is CPU work under Python's GIL:
    # more threads at it only take turns, and the turns cost (measured with one worker and eight clients: two at
    # once took 3.6 ms of CPU per submission, one at a time 2.6 ms). Waiting submissions queue without using
    # CPU; more worker processes (--workers) use more CPUs.
    submit_threads: int = 1
    # Whether the citizen sees a triage suggestion (its colour) before the GP has decided
    # (KRONIKER_CITIZEN_SEES_SUGGESTION=1, `kroniker serve --citizen-sees-suggestion`). Default: not.
    citizen_sees_suggestion: bool = False
    # Embargo: per document type code, the hours after a document's date before a citizen (or their proxy) sees
    # it (KRONIKER_EMBARGO="CODE=HOURS,…", `kroniker serve --embargo CODE=HOURS`). Default: none
    # (spec/sharing-and-clinical.md §2.6: sundhed.dk's hospital data have had none since 2017).
    embargo: dict[str, float] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'kroniker.db'}"

    @property
    def plan_store(self) -> PlanStore | None:
        return PlanStore(self.home / "plans") if self.plan_cache else None

    @property
    def key_file(self) -> Path:
        return self.home / "token.key"

    @property
    def audit_key_file(self) -> Path:
        """The audit chain's HMAC key: kept apart from the token key, so neither reveals the other."""
        return self.home / "audit.key"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env: dict[str, Any] = {
            "home": default_home(),
            "database_url": os.environ.get("KRONIKER_DATABASE") or None,
            "package_cache": front.package_cache_dir(),
            "validator_limits": front.limits(),
            "plan_cache": not os.environ.get("KRONIKER_NO_PLAN_CACHE"),
            "max_token_lifetime": _hours("KRONIKER_TOKEN_MAX_HOURS"),
            "citizen_sees_suggestion": os.environ.get("KRONIKER_CITIZEN_SEES_SUGGESTION", "").strip().lower()
            in ("1", "true", "yes") or None,
            "embargo": parse_embargo(os.environ.get("KRONIKER_EMBARGO", "").split(",")) or None,
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in env.items() if v is not None})


def _hours(name: str) -> int | None:
    """An environment variable in hours (as `kroniker token --hours`), as whole seconds; None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of hours, found {raw!r}") from None
    if not 0 < hours <= 24 * 366:
        raise ValueError(f"{name} must be more than 0 and at most a year of hours, found {raw!r}")
    return int(hours * 3600)


def parse_embargo(items: list[str]) -> dict[str, float]:
    """CODE=HOURS items (blank ones skipped) as {code: hours}; ValueError names the first that is not one."""
    out: dict[str, float] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        code, sep, hours = item.partition("=")
        code = code.strip()
        try:
            value = float(hours) if sep else -1.0
        except ValueError:
            value = -1.0
        if not code or not 0 <= value <= 24 * 366:
            raise ValueError(f"an embargo is CODE=HOURS (a document type code, 0 to a year of hours), "
                             f"found {item!r}")
        out[code] = value
    return out
