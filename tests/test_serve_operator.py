"""`kroniker serve` as an operator runs it (issue 14, item 8): every option's default in --help, a busy port
refused before anything starts, and SIGTERM letting the request in flight finish before the server exits 0.

Processes are real (tests/server_process.py); readiness and shutdown are observed (the health probe, the
server's `100 Continue`, a refused connection), never waited for with fixed sleeps.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kroniker.cli import build_parser
from kroniker.validators.packages import PackageCache
from tests.server_process import ServerProcess, distinct_note, tokens


def _serve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_every_serve_option_says_its_default() -> None:
    parser = _serve_parser()
    options = [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    assert {o for a in options for o in a.option_strings} >= {"--database", "--host", "--port", "--workers",
                                                              "--cache", "--lang"}
    text = parser.format_help()
    for action in options:
        assert action.help and "(default: " in action.help, action.option_strings
    # What the operator reads: the defaults the server really uses, filled in.
    assert "(default: 127.0.0.1)" in text and "(default: 8080)" in text and "(default: 1)" in text


def _serve(args: list[str], home: Path, cache: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KRONIKER_DATABASE", "KRONIKER_FHIR_PACKAGES")}
    env["KRONIKER_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "kroniker", "serve", "--cache", str(cache), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("workers", "lang", "words"), [("1", "en", "cannot listen on"),
                                                         ("2", "da", "kan ikke lytte på")])
def test_a_busy_port_is_refused_before_anything_starts(workers: str, lang: str, words: str, tmp_path: Path,
                                                        package_cache: PackageCache) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _serve(["--port", str(port), "--workers", workers, "--lang", lang], tmp_path / "home",
                      package_cache.root)
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and words in done.stderr
    assert "kroniker reference server on" not in done.stderr + done.stdout  # no banner
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "kroniker.db").exists()  # nothing set up for a server that did not start


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # accepted by a worker's socket that closed before taking the connection
        return False
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(workers: int, tmp_path: Path,
                                                               package_cache: PackageCache) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home",
                       workers=workers) as server:
        server.start()
        assert server.proc is not None
        body = distinct_note("sigterm")
        head = (f"POST /fhir/Bundle HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {tokens(server.home)['source']}\r\n"
                f"Content-Type: application/fhir+json\r\nContent-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as conn:
            conn.sendall(head)
            # The server says `100 Continue` when the handler first asks for the body: the request is in flight.
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = conn.recv(4096)
                assert chunk, "the server closed the connection before the request was in flight"
                got += chunk
            assert got.startswith(b"HTTP/1.1 100"), got
            server.proc.send_signal(signal.SIGTERM)
            # Shutdown has begun once the port refuses new connections (every worker closed its socket).
            deadline = time.monotonic() + 30
            while not _refused(server.port):
                assert time.monotonic() < deadline, "the server kept accepting connections after SIGTERM"
            assert server.proc.poll() is None  # still there: it has a request to finish
            conn.sendall(body)
            answer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
        code = server.proc.wait(timeout=60)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 201 Created", answer[:300]
    assert code == 0, server.log_tail()


def _access_lines(server: ServerProcess, count: int) -> list[str]:
    """The access log's lines but the readiness probes' (GET /health) once `count` are there (each is written
    just after its answer is sent, so their order among workers is not the requests' order)."""
    deadline = time.monotonic() + 30
    while True:
        lines = [ln for ln in server.log_tail(10**6).splitlines() if " ms role=" in ln and " /health " not in ln]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


CPR = "1505629996"  # the patient of tests/builders.py


@pytest.mark.parametrize("workers", [1, 2])
def test_one_access_line_per_request_without_cpr_query_or_token(workers: int, tmp_path: Path,
                                                                package_cache: PackageCache) -> None:
    import httpx

    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home",
                       workers=workers) as server:
        server.start()
        t = tokens(server.home)
        search = f"/fhir/DocumentReference?patient.identifier=urn:oid:1.2.208.176.1.2|{CPR}&status=current"
        asked = [  # (method, path, token, expected line's path, status, role)
            ("GET", "/metadata", None, "/metadata", 200, "-"),
            ("GET", search, t["citizen"], "/fhir/DocumentReference", 200, "citizen"),
            ("GET", search, t["source"], "/fhir/DocumentReference", 403, "source"),
            ("GET", f"/fhir/Patient/{CPR}", t["citizen"], "/fhir/Patient/**********", 404, "citizen"),
            ("GET", "/fhir/Patient/150562-9996", None, "/fhir/Patient/**********", 404, "-"),
            ("GET", search, "not-a-token", "/fhir/DocumentReference", 401, "-"),
        ] * 3
        for method, path, token, *_ in asked:  # a new connection each: the kernel spreads them over the workers
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            httpx.request(method, server.url + path, headers=headers, timeout=30)
        lines = _access_lines(server, len(asked))
    assert len(lines) == len(asked), lines
    seen = []
    for line in lines:
        fields = line.split(" ")
        assert fields[5] == "ms" and float(fields[4]) >= 0, line
        seen.append((fields[1], fields[2], int(fields[3]), fields[6]))
        assert CPR not in line and "9996" not in line and "?" not in line
        assert not any(token and token in line for _, _, token, *_ in asked)
    assert sorted(seen) == sorted((m, path, status, f"role={role}") for m, _, _, path, status, role in asked)


def test_no_access_log_when_switched_off(tmp_path: Path, package_cache: PackageCache) -> None:
    import httpx

    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home",
                       args=("--no-access-log",)) as server:
        server.start()
        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    # stopped: everything it wrote is in the log
    assert " ms role=" not in server.log_tail(10**6)
    assert "GET /health" not in server.log_tail(10**6)
