"""What a conformance run tests: our reference server started locally, a vendor's server at a URL (with tokens the
vendor supplies from a file or a command), or a folder of a vendor's documents."""

from __future__ import annotations

import hashlib
import json
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from kroniker.conformance.document_steps import VendorDocument, kind_of
from kroniker.conformance.steps import KeyedError, Unsupported, os_problem, principal_claims, principal_key
from kroniker.reference_server.tokens import Principal

TABLES = ("documents", "document_events")
DOCUMENT_SUFFIXES = (".json", ".xml")
MAX_DOCUMENTS = 10_000


class TargetError(KeyedError):
    """The target cannot be used (no server answers, an unreadable token file, …): a usage error."""


# -- tokens ----------------------------------------------------------------------------------------------

class KeyTokens:
    """Tokens signed with a reference server's key (our own server, or a test's variant of it)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._made: dict[str, str] = {}

    def __call__(self, principal: Principal) -> str:
        from kroniker.reference_server.tokens import issue

        k = principal_key(principal)
        if k not in self._made:
            self._made[k] = issue(self.key, principal)
        return self._made[k]

    def describe(self) -> str:
        return "signed with the local server's key"


class FileTokens:
    """A vendor's JSON file: {"<caller>": "<bearer token>"}, callers named as the session record names them
    (citizen:<CPR>, clinician:<authorisation id>@<SOR>, source:<SOR>, admin; docs/conformance.md)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TargetError("token-file-unreadable", path=path, problem_key=os_problem(exc)) from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise TargetError("token-file-shape", path=path)
        self.tokens: dict[str, str] = data

    def __call__(self, principal: Principal) -> str:
        k = principal_key(principal)
        if k not in self.tokens:
            raise Unsupported("", "err-no-token", caller=k, path=self.path)
        return self.tokens[k]

    def describe(self) -> str:
        return f"file {self.path.name}"


class CommandTokens:
    """A vendor's command: run once per caller with the caller's claims as JSON on standard input (and in
    KRONIKER_PRINCIPAL); its standard output is the bearer token."""

    def __init__(self, command: str, timeout: float = 30.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise TargetError("token-command-empty")
        self.command, self.timeout = command, timeout
        self._made: dict[str, str] = {}

    def __call__(self, principal: Principal) -> str:
        import os

        k = principal_key(principal)
        if k in self._made:
            return self._made[k]
        claims = json.dumps(principal_claims(principal), ensure_ascii=False)
        try:
            done = subprocess.run(self.argv, input=claims, capture_output=True, text=True, timeout=self.timeout,
                                  env={**os.environ, "KRONIKER_PRINCIPAL": claims}, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unsupported("", "err-token-command", caller=k, problem=exc) from None
        token = done.stdout.strip()
        if done.returncode != 0 or not token or any(c.isspace() for c in token):
            raise Unsupported("", "err-token-none", caller=k, status=done.returncode,
                              stderr=done.stderr.strip()[:200])
        self._made[k] = token
        return token

    def describe(self) -> str:
        return f"command {self.argv[0]}"


# -- servers -----------------------------------------------------------------------------------------------

class RemoteTarget:
    """A sharing system at a URL that speaks the reference server's endpoints."""

    def __init__(self, url: str, tokens: Callable[[Principal], str], *,
                 rows: Callable[[], dict[str, int]] | None = None, kind: str = "url") -> None:
        self.url, self.tokens, self._rows, self.kind = url.rstrip("/"), tokens, rows, kind

    def token(self, principal: Principal) -> str:
        return self.tokens(principal)

    def rows(self) -> dict[str, int] | None:
        return self._rows() if self._rows is not None else None

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.tokens, "describe", None)
        return {"kind": self.kind, "url": self.url, "tokens": describe() if describe else "supplied"}

    def check(self) -> None:
        import httpx

        try:
            httpx.get(f"{self.url}/metadata", timeout=10)
        except httpx.HTTPError as exc:
            raise TargetError("target-no-answer", url=self.url, problem=exc) from None


class LocalServer:
    """Our reference server in this process, on a free loopback port, with SQLite in a temporary KRONIKER_HOME
    (or in `home`); the app is create_app's, or `app_factory`'s (a test's variant of it)."""

    def __init__(self, package_cache: Path | None = None, home: Path | None = None,
                 app_factory: Callable[..., Any] | None = None) -> None:
        self.package_cache, self.home_arg, self.app_factory = package_cache, home, app_factory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.target: RemoteTarget | None = None

    def __enter__(self) -> RemoteTarget:
        import sqlalchemy as sa
        import uvicorn

        from kroniker.conformance.sharing import EMBARGO
        from kroniker.reference_server.app import create_app
        from kroniker.reference_server.db import make_engine
        from kroniker.reference_server.settings import Settings
        from kroniker.reference_server.tokens import load_or_create_key

        if self.home_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kroniker-conformance-")
        home = self.home_arg or Path(self._tmp.name)  # type: ignore[union-attr]
        # Set up as the server suite expects a target to be (docs/conformance.md): the Shared Notes' embargo.
        settings = Settings(home=home, database_url=f"sqlite:///{home / 'kroniker.db'}",
                            package_cache=self.package_cache, embargo=dict(EMBARGO))
        app = (self.app_factory or create_app)(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise TargetError("local-not-started")
            time.sleep(0.02)
        self.engine = make_engine(settings.database)

        def rows() -> dict[str, int]:
            with self.engine.connect() as conn:
                return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}

        self.target = RemoteTarget(f"http://127.0.0.1:{port}", KeyTokens(load_or_create_key(settings.key_file)),
                                   rows=rows, kind="local")
        return self.target

    def _stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        if getattr(self, "engine", None) is not None:
            self.engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()


# -- documents ---------------------------------------------------------------------------------------------

def vendor_documents(folder: Path) -> list[VendorDocument]:
    """Every *.json and *.xml below the folder, in name order, with its sha256 and the standard it claims."""
    if not folder.is_dir():
        raise TargetError("not-a-folder", path=folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES)
    if not paths:
        raise TargetError("no-documents", path=folder)
    if len(paths) > MAX_DOCUMENTS:
        raise TargetError("too-many-documents", path=folder, limit=MAX_DOCUMENTS)
    out = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise TargetError("document-unreadable", path=p, problem_key=os_problem(exc)) from None
        out.append(VendorDocument(p, p.relative_to(folder).as_posix(), hashlib.sha256(data).hexdigest(),
                                  kind_of(data)))
    return out
