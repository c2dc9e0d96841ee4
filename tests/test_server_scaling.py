"""Serving at scale: the store's write path (reference_server/db.py: one write connection per process, writers
queued on a lock and, on SQLite, on an flock shared by the worker processes, the hot statements compiled once
and run on the DBAPI cursor), several workers each on a socket of its own (reference_server/serve.py), the
limit on submissions validated at once, and remembered tokens.

Every test runs against the real database (SQLite file, PostgreSQL schema) or the real app.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import multiprocessing
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.audit import AuditRecord
from kroniker.reference_server.db import audit_events, compiled, documents, make_engine, migrate, reading
from kroniker.reference_server.serve import listening_socket
from kroniker.reference_server.settings import Settings
from kroniker.reference_server.store import Store
from kroniker.reference_server.tokens import Principal, TokenError, Verifier, issue
from kroniker.validators.packages import PackageCache
from tests import server_support as s
from tests.server_process import FHIR_JSON, ServerProcess, distinct_note, tokens

SOURCE = Principal("source", sor="481751000016007", org_name="Lægerne i Kronikergården")
AUDIT_KEY = b"a" * 64  # the audit chain's key in these tests


def _record(store: Store, label: str) -> dict[str, Any]:
    return store.record(AuditRecord("search", SOURCE, patient_cpr="1505629996", detail={"by": label}))


def _chain(url: str) -> tuple[list[int], list[str]]:
    """(the audit log's sequence numbers in order, what `audit verify` finds wrong)."""
    engine = make_engine(url)
    try:
        with reading(engine) as conn:
            seqs = [r[0] for r in conn.execute(sa.select(audit_events.c.seq).order_by(audit_events.c.seq))]
        return seqs, [f"{t.seq}: {t.problem}" for t in audit.verify(engine, AUDIT_KEY)]
    finally:
        engine.dispose()


def test_threads_writing_at_once_make_one_unbroken_chain(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, AUDIT_KEY)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(40):
                _record(store, f"thread-{n}-{i}")
        except BaseException as exc:  # collected and failed below, with the thread's error
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    store.close()
    assert not errors, errors[:3]
    seqs, problems = _chain(database_url)
    assert seqs == list(range(1, 12 * 40 + 1))
    assert problems == []


def _write_in_a_process(url: str, label: str, count: int) -> int:
    store = Store(make_engine(url), AUDIT_KEY)
    try:
        for i in range(count):
            _record(store, f"{label}-{i}")
    finally:
        store.close()
    return count


def test_worker_processes_write_one_sqlite_file_in_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kroniker.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        written = pool.starmap(_write_in_a_process, [(url, f"worker-{n}", 120) for n in range(3)])
    seqs, problems = _chain(url)
    assert sum(written) == 360
    assert seqs == list(range(1, 361))
    assert problems == []


def test_an_sqlite_writer_waits_for_the_flock_other_processes_take(tmp_path: Path) -> None:
    """Worker processes queue on an flock beside the database (not in SQLite's sleeping busy handler): while
    another holder has it, a write waits; released, the write goes through."""
    url = f"sqlite:///{tmp_path / 'kroniker.db'}"
    engine = make_engine(url)
    migrate(engine)
    store = Store(engine, AUDIT_KEY)
    _record(store, "first")  # the lock file exists from the first write on
    lock_file = tmp_path / "kroniker.db-writer.lock"
    assert lock_file.is_file()
    done = threading.Event()
    with lock_file.open("rb") as other:  # another open file description: as another process holds it
        fcntl.flock(other, fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: (_record(store, "second"), done.set()))
        thread.start()
        waited = not done.wait(0.5)
        fcntl.flock(other, fcntl.LOCK_UN)
    thread.join(30)
    store.close()
    assert waited, "the write went through while another holder had the writers' lock"
    assert done.is_set()
    assert _chain(url) == ([1, 2], [])


def test_a_lost_postgresql_write_connection_is_replaced(pg_database_url: str) -> None:
    import psycopg

    from tests.postgres import PG_URL

    database_url = pg_database_url
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, AUDIT_KEY)
    _record(store, "before")
    with store.writer.transaction() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    outcomes = []
    for label in ("just after", "after that"):
        try:
            _record(store, label)
            outcomes.append("written")
        except sa.exc.DBAPIError as exc:
            outcomes.append("lost connection" if exc.connection_invalidated else f"other error: {exc}")
    store.close()
    # The write that meets the dead connection may fail (nothing of it is kept); the next one has a new one.
    assert outcomes[-1] == "written", outcomes
    assert outcomes[0] in ("written", "lost connection"), outcomes
    seqs, problems = _chain(database_url)
    assert seqs == list(range(1, 2 + outcomes.count("written")))
    assert problems == []


def test_compiled_statements_write_what_sqlalchemy_reads_back(database_url: str) -> None:
    """Values go through the column types' bind processors: dates with microseconds, booleans, bytes, None and
    non-ASCII text read back through SQLAlchemy as they went in; a duplicate is SQLAlchemy's IntegrityError."""
    engine = make_engine(database_url)
    migrate(engine)
    when = dt.datetime(2026, 11, 25, 9, 30, 15, 123456)
    row = {c.name: None for c in documents.c}
    row.update(id="d1", master_identifier="urn:uuid:m1", content_sha256="0" * 64, content=b"\x00\xffbytes",
               content_type=FHIR_JSON, standard="medcom.fhir.dk.notes#2.0.2", patient_cpr="1505629996",
               status="current", type_system="http://snomed.info/sct", type_code="866144008",
               author_org_sor="481751000016007", author_org_name="Lægerne i Kronikergården",
               title="Årskontrol – lænderyg", service_start=when, created=when, docref=json.dumps({"æ": "ø"}),
               version=1)
    insert = documents.insert()
    try:
        with Store(engine, AUDIT_KEY).writer.transaction() as conn:
            assert compiled(insert, conn).execute(conn, row) == 1
        with reading(engine) as conn:
            back = dict(conn.execute(sa.select(documents).where(documents.c.id == "d1")).mappings().one())
        assert back == row
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            compiled(insert, conn).execute(conn, row)
    finally:
        engine.dispose()


def test_a_remembered_token_still_expires() -> None:
    key = b"k" * 32
    token = issue(key, SOURCE, lifetime=1)
    verify = Verifier(key)
    assert verify(token) == verify(token) and verify(token).sor == SOURCE.sor
    time.sleep(2.1)  # JWT expiry is in whole seconds
    with pytest.raises(TokenError):
        verify(token)


def test_a_token_that_fails_is_never_remembered() -> None:
    verify = Verifier(b"k" * 32)
    forged = issue(b"x" * 32, SOURCE)
    for _ in range(2):
        with pytest.raises(TokenError):
            verify(forged)


def test_a_workers_socket_gives_its_connections_tcp_nodelay() -> None:
    """Without TCP_NODELAY a kept-alive request waits for a delayed ACK (~40 ms); Linux gives accepted
    connections the listening socket's setting."""
    listener = listening_socket("127.0.0.1", 0)
    listener.listen()
    try:
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()


def _established_per_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections on local `port` each process holds (from /proc)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    held = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local_port, state, inode = int(cols[1].rsplit(":", 1)[1], 16), cols[3], cols[9]
            if local_port == port and state == "01" and inode in inodes:  # 01: ESTABLISHED
                held[inodes[inode]] += 1
    return held


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc to see who holds connections")
def test_several_workers_each_take_connections(tmp_path: Path, package_cache: PackageCache) -> None:
    """`kroniker serve --workers 2`: each worker accepts on a socket of its own (SO_REUSEPORT), so sixteen
    kept-alive connections are spread over both, and all of them are answered."""
    home = tmp_path / "home"
    with ServerProcess(f"sqlite:///{tmp_path / 'kroniker.db'}", package_cache.root, home, workers=2) as server:
        server.start()
        assert server.proc is not None
        workers = [int(p) for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()]
        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(16)]
        try:
            assert [c.get("/health").status_code for c in clients] == [200] * 16  # each opens its connection
            held = _established_per_process(workers, server.port)
            source = tokens(home)["source"]
            answers = [c.post("/fhir/Bundle", content=distinct_note(f"spread-{i}"),
                              headers={"authorization": f"Bearer {source}", "content-type": FHIR_JSON}).status_code
                       for i, c in enumerate(clients)]
        finally:
            for c in clients:
                c.close()
    assert sum(held.values()) == 16, held
    assert sum(1 for n in held.values() if n > 0) == 2, f"connections per worker process: {held}"
    assert answers == [201] * 16


def test_a_second_server_on_the_same_port_is_refused(tmp_path: Path, package_cache: PackageCache) -> None:
    """SO_REUSEPORT lets a worker's socket share the port with its siblings, not with another server."""
    import os
    import subprocess
    import sys

    with ServerProcess(f"sqlite:///{tmp_path / 'a.db'}", package_cache.root, tmp_path / "a", workers=2) as first:
        first.start()
        second = subprocess.run(
            [sys.executable, "-m", "kroniker", "serve", "--workers", "2", "--port", str(first.port),
             "--database", f"sqlite:///{tmp_path / 'b.db'}", "--cache", str(package_cache.root)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "KRONIKER_HOME": str(tmp_path / "b")})
        assert httpx.get(f"{first.url}/health").status_code == 200
    assert second.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize("limit", [1, 2])
def test_a_worker_validates_no_more_submissions_at_once_than_its_setting(limit: int, tmp_path: Path,
                                                                          package_cache: PackageCache,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from kroniker.validators.validate import Validator

    busy, most = 0, 0
    lock = threading.Lock()
    real = Validator.validate_parsed

    def counted(self: Validator, *args: Any, **kwargs: Any) -> Any:  # the real validator, counted
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
        try:
            time.sleep(0.05)  # long enough for the other requests to be waiting, if they are let in
            return real(self, *args, **kwargs)
        finally:
            with lock:
                busy -= 1

    monkeypatch.setattr(Validator, "validate_parsed", counted)
    settings = Settings(home=tmp_path, package_cache=package_cache.root, submit_threads=limit)
    with s.running(settings) as server:
        headers = server.auth(SOURCE, **{"content-type": FHIR_JSON})

        def post(n: int) -> int:
            return httpx.post(f"{server.url}/fhir/Bundle", content=distinct_note(f"limit-{limit}-{n}"),
                              headers=headers, timeout=60).status_code

        answers: list[int] = []
        threads = [threading.Thread(target=lambda n=n: answers.append(post(n))) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert answers == [201] * 6
    assert most == limit


def _spawned_workers(supervisor: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(c) for c in children
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads Linux's /proc to find the workers")
def test_a_worker_that_dies_is_replaced(tmp_path: Path, package_cache: PackageCache) -> None:
    import os
    import signal

    home = tmp_path / "home"
    with ServerProcess(f"sqlite:///{tmp_path / 'kroniker.db'}", package_cache.root, home, workers=2) as server:
        server.start()
        assert server.proc is not None
        before = _spawned_workers(server.proc.pid)
        assert len(before) == 2, before
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        now = before
        while time.monotonic() < deadline:
            now = _spawned_workers(server.proc.pid)
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and before[0] not in now and before[1] in now, (before, now)
        source = tokens(home)["source"]
        clients = [httpx.Client(base_url=server.url, timeout=60) for _ in range(16)]
        try:
            answers = [c.post("/fhir/Bundle", content=distinct_note(f"after-{i}"),
                              headers={"authorization": f"Bearer {source}", "content-type": FHIR_JSON}).status_code
                       for i, c in enumerate(clients)]
            held = _established_per_process(now, server.port)
        finally:
            for c in clients:
                c.close()
    assert answers == [201] * 16
    assert all(n > 0 for n in held.values()), f"connections per worker process: {held}"


def test_the_supervisor_gives_up_on_workers_that_cannot_start(tmp_path: Path) -> None:
    """Workers that end at start (here: an app that cannot be imported) are not restarted for ever."""
    import subprocess
    import sys

    from tests.server_process import free_port

    port = free_port()
    code = ("import sys, uvicorn; from kroniker.reference_server.serve import reserve, run_workers; "
            f"sys.exit(run_workers(uvicorn.Config('kroniker_no_such_module:app'), '127.0.0.1', {port}, 2, "
            f"reserve('127.0.0.1', {port}, shared=True)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "workers keep ending at start" in done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--port", "99999"], "--port: 99999 is not between 0 and 65535"),
    (["--workers", "0"], "--workers: 0 is not between 1 and 256"),
    (["--workers", "two"], "--workers: not a whole number: 'two'"),
])
def test_serve_refuses_impossible_ports_and_worker_counts(args: list[str], says: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kroniker", "serve", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "KRONIKER_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "kroniker.db").exists()  # refused before anything is made
