"""The server's settings: one object, built from the environment or given by tests; no global state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_home() -> Path:
    return Path(os.environ.get("KRONIKER_HOME") or Path.home() / ".kroniker").expanduser()


@dataclass(frozen=True)
class Settings:
    """Where the data lives and how the server behaves."""

    home: Path = field(default_factory=default_home)
    database_url: str | None = None  # default: SQLite in home
    package_cache: Path | None = None  # default: the FHIR package cache (~/.fhir/packages)
    max_request_bytes: int = 10 * 1024 * 1024
    page_size: int = 50
    max_page_size: int = 500
    base_url: str = ""  # the public base of absolute URLs; default: taken from each request
    # Submissions one worker process validates and stores at once. Validation is CPU work under Python's GIL:
    # more threads at it only take turns, and the turns cost (measured with one worker and eight clients: two at
    # once took 3.6 ms of CPU per submission, one at a time 2.6 ms). Waiting submissions queue without using
    # CPU; more worker processes (--workers) use more CPUs.
    submit_threads: int = 1

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'kroniker.db'}"

    @property
    def key_file(self) -> Path:
        return self.home / "token.key"

    @property
    def audit_key_file(self) -> Path:
        """The audit chain's HMAC key: kept apart from the token key, so neither reveals the other."""
        return self.home / "audit.key"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = {
            "home": default_home(),
            "database_url": os.environ.get("KRONIKER_DATABASE") or None,
            "package_cache": Path(os.environ["KRONIKER_FHIR_PACKAGES"]) if os.environ.get("KRONIKER_FHIR_PACKAGES")
            else None,
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)  # type: ignore[arg-type]
