"""The app as uvicorn's workers build it (each worker process builds its own from the environment), and the
supervisor of several workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.applications import Starlette

from kroniker.reference_server.app import create_app
from kroniker.reference_server.settings import Settings


def app_from_env() -> Any:
    _follow_supervisor()
    app = create_app(Settings.from_env(), run_migrations=False)
    if os.environ.get("KRONIKER_ACCESS_LOG", "1") == "0":  # kroniker serve --no-access-log
        return app
    return AccessLog(app)


# -- the access log -------------------------------------------------------------------------------------------

# A CPR number in a path (Patient/<CPR>, or anything a caller typed): ten digits, or six, a hyphen and four.
_CPR_IN_PATH = re.compile(r"(?<![0-9])[0-9]{6}-?[0-9]{4}(?![0-9])")
_MAX_PATH = 200


class AccessLog:
    """One line per request on stderr: time, method, path, status, milliseconds and the caller's role.

    Never the query string (a search names the patient's CPR there), a token or a CPR: a CPR-shaped part of the
    path is masked, and anything unprintable escaped, so that a line is one line. uvicorn's own access log, which
    prints the query string, is off (uvicorn_config). Each line is one write(2) on stderr, whole even when
    several workers share it.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:  # app.state, app.routes … as the app's own
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what the caller is told when the app fails before answering (Starlette answers 500)

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.write(scope, status[0], (time.perf_counter() - started) * 1000)

    def write(self, scope: dict[str, Any], status: int, ms: float) -> None:
        path = _CPR_IN_PATH.sub("**********", str(scope.get("path", "")))
        if len(path) > _MAX_PATH:
            path = path[:_MAX_PATH] + "…"
        path = "".join(c if c.isprintable() and c != " " else "%20" if c == " "
                       else c.encode("unicode_escape").decode("ascii") for c in path)
        method = "".join(c for c in str(scope.get("method", "-"))[:16] if c.isalnum()) or "-"
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{when} {method} {path} {status} {ms:.1f} ms role={self.role(scope)}{self.proxy(scope)}\n"
        with contextlib.suppress(OSError):  # a closed stderr must not fail the request
            os.write(2, line.encode("utf-8", "backslashreplace"))

    @staticmethod
    def proxy(scope: dict[str, Any]) -> str:
        """A citizen who acted for another (policy.acting_for): the kind, and who for whom with both CPR numbers
        masked (the audit log has them)."""
        state = scope.get("state")
        kind = state.get("kroniker.acting_for") if isinstance(state, dict) else None
        if kind not in ("custody", "fuldmagt"):
            return ""
        return f" proxy={kind} actor=cpr:********** subject=cpr:**********"

    def role(self, scope: dict[str, Any]) -> str:
        """The role of a token that verifies (the app verified it already: a hit in the verifier's memory)."""
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "-"
        try:
            return str(self.app.state.ctx.verify(token.strip()).role)
        except Exception:  # an invalid token: the app answered 401; the log says who nobody knows
            return "-"


def _follow_supervisor() -> None:
    """A worker stops when its supervisor is gone (SIGKILLed supervisors leave no orphans holding the port)."""
    supervisor = os.environ.get("KRONIKER_SUPERVISOR_PID")
    if not supervisor or not supervisor.isdigit():
        return
    if os.getppid() != int(supervisor):
        os._exit(0)  # the supervisor died while this worker was still starting

    _death_signal(signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)  # let the worker finish its requests …
        time.sleep(5)
        os.kill(os.getpid(), signal.SIGKILL)  # … but not hold the port for ever

    threading.Thread(target=watch, name="kroniker-supervisor-watch", daemon=True).start()


def _death_signal(sig: int) -> None:
    """Linux: the kernel sends `sig` to this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


# Seconds a worker given SIGTERM waits for the requests it has before it cancels them and exits. Every request's
# work is bounded by the input limits (validators/source.py), so this is a backstop, not the usual path: without
# it uvicorn waits for in-flight requests for ever, and one request that never ends keeps the server from
# stopping. A cancelled submission stores nothing (its transaction is not committed).
SHUTDOWN_GRACE = 10


def uvicorn_config(host: str, port: int, workers: int) -> Any:
    """How every worker runs the app (each worker process builds its own app from the environment)."""
    import uvicorn

    return uvicorn.Config("kroniker.reference_server.serve:app_from_env", factory=True, host=host, port=port,
                          workers=workers, log_level="warning", access_log=False,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE)


# -- several workers ------------------------------------------------------------------------------------------

log = logging.getLogger("kroniker.reference_server")

QUICK_DEATH = 10.0  # seconds: a worker that ends sooner than this after starting did not really start
QUICK_DEATHS = 3  # in a row, and the supervisor gives up instead of restarting for ever


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT, so that each worker can have its own on the same port, and with
    TCP_NODELAY, which the connections it accepts inherit (Linux): without it a kept-alive request waits for
    a delayed ACK (~40 ms)."""
    sock = _tcp(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def _tcp(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
    return sock


MESSAGES = {
    "port-busy": {"en": "kroniker serve: cannot listen on {host}:{port}: {reason} (is another server running "
                        "there? choose another --port)",
                  "da": "kroniker serve: kan ikke lytte på {host}:{port}: {reason} (kører en anden server der? "
                        "vælg en anden --port)"},
}


def message(key: str, lang: str, **params: Any) -> str:
    return MESSAGES[key]["da" if lang == "da" else "en"].format(**params)


def reserve(host: str, port: int, *, shared: bool) -> socket.socket:
    """The server's socket, bound before anything else starts (OSError when the port is in use).

    First bound without SO_REUSEPORT, which fails if anything listens on the port already, another kroniker
    with its workers included (two servers must not quietly share a port). One worker then listens on it; for
    several (`shared`) it is held bound with SO_REUSEPORT but not listening, so that no connection waits on
    the supervisor's socket while each worker accepts on a socket of its own.
    """
    if shared and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers above 1 needs SO_REUSEPORT (Linux spreads connections with it)")
    probe = _tcp(host)
    if not shared:
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            probe.bind((host, port))
        except OSError:
            probe.close()
            raise
        return probe
    try:
        probe.bind((host, port))
        port = int(probe.getsockname()[1])
    finally:
        probe.close()
    return listening_socket(host, port)


_pending: list[int] = []  # SIGTERM or SIGINT received before the server ran (catch_early_signals)


def catch_early_signals() -> None:
    """From here on a SIGTERM or SIGINT stops the server instead of the process: one that comes before the server
    runs (while loading, right after the banner) is kept, and the server then stops at once, exit status 0."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda sig, _frame: _pending.append(sig))


def run_one(config: Any, sock: socket.socket | None = None) -> int:
    """Serve with one uvicorn server until SIGTERM or SIGINT; 0 once the requests in flight have finished.

    uvicorn raises the signal it caught again once it has shut down, with the handler it found restored: the
    default one would end the process by the signal (exit status 143 for SIGTERM), so the handler it finds
    tells the server to stop, which after the shutdown does nothing."""
    import uvicorn

    server = uvicorn.Server(config)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    if _pending:  # came before the handlers above: stop at once
        server.should_exit = True
    server.run(sockets=[sock] if sock is not None else None)
    return 0


def _worker(config: Any, host: str, port: int) -> None:
    sys.exit(run_one(config, listening_socket(host, port)))


def run_workers(config: Any, host: str, port: int, workers: int, reserved: socket.socket) -> int:
    """Run `workers` uvicorn worker processes, each accepting on a socket of its own, until SIGTERM or SIGINT.

    The kernel spreads new connections over the workers' sockets (SO_REUSEPORT). uvicorn's own supervisor
    shares one socket among its workers instead; Linux then hands each new connection to the worker that
    waited last, so the few kept-alive connections a handful of GP systems hold can all land on one worker
    while the others idle (seen here: two workers, eight connections, every request on one worker in half of
    the runs). A worker that dies is replaced; workers follow the supervisor if it dies (_follow_supervisor).
    `reserved` is reserve(…, shared=True)'s socket, held until the workers have stopped.
    """
    os.environ["KRONIKER_SUPERVISOR_PID"] = str(os.getpid())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if _pending:
        stop.set()
    spawn = multiprocessing.get_context("spawn")
    procs: list[Any] = [None] * workers
    started = [0.0] * workers
    quick_deaths = 0
    try:
        while not stop.is_set():
            for i, proc in enumerate(procs):
                if proc is not None and proc.is_alive():
                    continue
                if proc is not None:
                    quick_deaths = quick_deaths + 1 if time.monotonic() - started[i] < QUICK_DEATH else 0
                    if quick_deaths >= QUICK_DEATHS:
                        print(f"kroniker serve: workers keep ending at start (last exit code {proc.exitcode}); "
                              "stopping", file=sys.stderr)
                        return 1
                    log.warning("worker %s ended with exit code %s; starting another", proc.pid, proc.exitcode)
                procs[i] = spawn.Process(target=_worker, args=(config, host, port), name=f"kroniker-worker-{i}")
                procs[i].start()
                started[i] = time.monotonic()
            stop.wait(0.5)
        return 0
    finally:
        for proc in procs:
            if proc is not None and proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests it has
        for proc in procs:
            if proc is not None:
                proc.join(SHUTDOWN_GRACE + 5)
                if proc.is_alive():
                    proc.kill()
                    proc.join(5)
