"""`kroniker serve` as a real subprocess, and distinct valid Shared Notes to load it with (tests and bench)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kroniker.reference_server.tokens import Principal, issue, load_or_create_key
from tests.builders import CLINIC, PATIENT, shared_note

FHIR_JSON = "application/fhir+json"


def free_port() -> int:
    """A loopback port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One `kroniker serve` process on a free loopback port; always stopped on exit from the `with` block."""

    def __init__(self, database: str, cache: Path, home: Path, *, workers: int = 1, log: Path | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.database, self.cache, self.home, self.workers, self.args = database, cache, home, workers, args
        self.log = log or home / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server and wait until /health answers (a new free port each time)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("KRONIKER_DATABASE", "KRONIKER_FHIR_PACKAGES")}
        env["KRONIKER_HOME"] = str(self.home)
        cmd = [sys.executable, "-m", "kroniker", "serve", "--database", self.database, "--port", str(self.port),
               "--cache", str(self.cache), "--workers", str(self.workers), *self.args]
        with self.log.open("ab") as log:
            # A session of its own, so that a multi-worker server's children can be stopped with it.
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kroniker serve exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"kroniker serve did not answer /health within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._kill_group()

    def stop(self) -> None:
        """Stop it politely, then not (idempotent)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._kill_group()
        self.proc = None

    def _kill_group(self) -> None:
        """Worker processes of a killed supervisor would live on as orphans: end the session we started."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def tokens(home: Path) -> dict[str, str]:
    """Bearer tokens signed with the data directory's key: the clinic's GP system and the note's patient."""
    key = load_or_create_key(home / "token.key")
    return {
        "source": issue(key, Principal("source", sor=CLINIC["sor"], org_name=CLINIC["name"])),
        "citizen": issue(key, Principal("citizen", cpr=PATIENT["cpr"])),
    }


def distinct_note(label: str) -> bytes:
    """A valid Shared Note of its own: new note text, Bundle.id, Bundle.identifier and Composition.identifier."""
    bundle: dict[str, Any] = shared_note(
        "<p><b>Årskontrol, kroniske lænderygsmerter</b></p>"
        f"<p>Notat {label}: smerter stabile, NRS 4/10 i hvile. Går 2 km dagligt.</p>"
        "<p><u>Mål og planer aftalt med patienten</u><br/>1. Gå 30 minutter fem dage om ugen.<br/>"
        "2. Fortsætte hjemmeøvelser fra fysioterapeut.<br/>3. Kontrol om 12 måneder.</p>")
    bundle["id"] = str(uuid.uuid4())
    bundle["identifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    composition["identifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    return json.dumps(bundle, ensure_ascii=False).encode("utf-8")


def master_identifier(document: bytes) -> str:
    """The Composition.identifier a document is registered under (its XDS uniqueId)."""
    return str(json.loads(document)["entry"][0]["resource"]["identifier"]["value"])
