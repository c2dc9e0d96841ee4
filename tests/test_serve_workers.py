"""`kroniker serve --workers 2` as an operator runs it: prompt answers on kept-alive connections, and no worker
left serving when the server is killed.

Both found while benchmarking (bench/server.py) and testing durability (tests/test_server_durability.py).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from kroniker.reference_server.serve import listening_socket
from kroniker.validators.packages import PackageCache
from tests.server_process import ServerProcess


def test_the_workers_sockets_hand_their_connections_tcp_nodelay() -> None:
    """A kept-alive request to a worker waited ~40 ms for a delayed ACK (uvicorn issue #3149) until the workers'
    sockets carried TCP_NODELAY. What is tested is the cause, on the socket each worker accepts on: a connection
    accepted from it has TCP_NODELAY (Linux passes it on). The latency itself is bench/hostile.py's (p50/p99 of
    /health on one kept-alive connection), not a clock in a test."""
    server = listening_socket("127.0.0.1", 0)
    try:
        server.listen(1)
        with socket.create_connection(server.getsockname()[:2], timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the option is the server's
    finally:
        server.close()


def test_every_worker_accepts_on_such_a_socket() -> None:
    """The worker process runs uvicorn on listening_socket(); a worker given another socket would lose the option."""
    import inspect

    from kroniker.reference_server import serve

    assert "run_one(config, listening_socket(host, port))" in inspect.getsource(serve._worker)


def test_killing_a_multi_worker_server_stops_all_of_it(package_cache: PackageCache, tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home", workers=2) as server:
        server.start()
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)  # the supervisor only, as a crash or the OOM killer would
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 3.0
        answering = True
        while answering and time.monotonic() < deadline:
            try:
                httpx.get(f"{server.url}/health", timeout=1.0)
                time.sleep(0.2)
            except httpx.TransportError:
                answering = False
        # the `with` block ends the whole session, orphans included
    assert not answering, "the workers of a killed server still answer 3 s later"


class _Bombs:
    """A GP system's connection sending the 1 MB attribute bomb over and over (issue 9), in a thread of its own."""

    def __init__(self, url: str, token: str) -> None:
        import threading

        from tests.hostile_documents import attribute_bomb

        self.url, self.token, self.body = url, token, attribute_bomb(100_000)
        self.answers: list[tuple[int, set[str]]] = []
        self.stop = threading.Event()
        self.refused = threading.Event()  # a bomb has been answered
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/fhir+xml"}
        with httpx.Client(base_url=self.url, timeout=120.0) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/fhir/Bundle", content=self.body, headers=headers)
                except httpx.TransportError:
                    return  # the server stopped
                codes = {c["code"] for i in r.json().get("issue", []) for c in i["details"]["coding"]}
                self.answers.append((r.status_code, codes))
                self.refused.set()

    def __enter__(self) -> _Bombs:
        self.thread.start()
        # A real condition, with a bound for the old code (a bomb kept a worker busy for 18 minutes).
        assert self.refused.wait(60), "no bomb was answered within 60 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(130)


def test_health_answers_while_attribute_bombs_are_refused(package_cache: PackageCache, tmp_path: Path) -> None:
    from tests.server_process import tokens

    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home") as server:
        server.start()
        with _Bombs(server.url, tokens(server.home)["source"]) as bombs, \
                httpx.Client(base_url=server.url, timeout=30.0) as client:
            before = len(bombs.answers)
            health = [client.get("/health").status_code for _ in range(50)]
            deadline = time.monotonic() + 60
            while len(bombs.answers) < before + 2 and time.monotonic() < deadline:  # still coming during /health
                time.sleep(0.01)
    assert health == [200] * 50
    assert len(bombs.answers) >= before + 2
    assert bombs.answers and all(a == (422, {"too-large"}) for a in bombs.answers), bombs.answers[:3]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_the_server_while_attribute_bombs_arrive(workers: int, package_cache: PackageCache,
                                                               tmp_path: Path) -> None:
    from tests.server_process import tokens

    with ServerProcess(f"sqlite:///{tmp_path / 'k.db'}", package_cache.root, tmp_path / "home",
                       workers=workers) as server:
        server.start()
        assert server.proc is not None
        with _Bombs(server.url, tokens(server.home)["source"]):
            server.proc.send_signal(signal.SIGTERM)
            # Generous: in-flight requests get serve.SHUTDOWN_GRACE (10 s); a hang (issue 9: SIGTERM ignored) fails.
            code = server.proc.wait(timeout=60)
    assert code in (0, -signal.SIGTERM), server.log_tail()


def test_one_transaction_sent_to_two_workers_at_once_is_stored_once_and_answered_alike(
        care_package_cache: PackageCache, pg_database_url: str, tmp_path: Path) -> None:
    """MHD ITI-65 sent twice at the same moment (a client's retry racing its first try) to `--workers 2` on
    PostgreSQL: two processes, so nothing in one process orders them; the database's unique indexes let one in,
    and the other must be answered as the resend it is (mhd.py, `Conflict` → `_resubmitted`). Whatever the
    interleaving, per round: both answers 200, the same locations, one of them created what the other found, and
    the documents and Lists are stored once. Eight rounds, each on fresh connections released by a barrier."""
    import sqlalchemy as sa

    from kroniker.reference_server.tokens import issue, load_or_create_key
    from tests.mhd_support import add_folder, provide_bundle
    from tests.server_support import encode, new_patient, note, source

    with ServerProcess(pg_database_url, care_package_cache.root, tmp_path / "home", workers=2) as server:
        server.start()
        token = issue(load_or_create_key(server.home / "token.key"), source())
        engine = sa.create_engine(pg_database_url)
        for _ in range(8):
            p = new_patient("Samtidig", "Igen")
            tx = provide_bundle(note(p), note(p))
            add_folder(tx)
            answers = _at_once(f"{server.url}/fhir", encode(tx), token)
            assert [a.status_code for a in answers] == [200, 200], [a.text[:500] for a in answers]
            where = [[e["response"]["location"] for e in a.json()["entry"]] for a in answers]
            assert where[0] == where[1]
            statuses = sorted("/".join(sorted({e["response"]["status"] for e in a.json()["entry"]})) for a in answers)
            assert statuses == ["200 OK", "201 Created"], statuses
            with engine.connect() as conn:
                docs = conn.execute(sa.text("SELECT count(*) FROM documents WHERE patient_cpr = :c"),
                                    {"c": p.cpr}).scalar_one()
                lists = conn.execute(sa.text("SELECT count(*) FROM clinical_resources WHERE patient_cpr = :c"),
                                     {"c": p.cpr}).scalar_one()
            assert (docs, lists) == (2, 2), (docs, lists)  # two documents; the SubmissionSet and the Folder
        engine.dispose()


def test_a_folder_updated_by_two_workers_at_once_loses_nothing(
        care_package_cache: PackageCache, pg_database_url: str, tmp_path: Path) -> None:
    """Two transactions adding a document each to the same kept Folder (ITI-65, PUT List/{id}), checked against its
    version 1, sent at the same moment to `--workers 2` on PostgreSQL: one is stored (version 2); the other would
    take the first one's document out of the Folder and is refused — 409 XDSMetadataVersionError when both were
    checked before either was stored (Store._update_list writes over the version checked only), 422
    XDSMetadataUpdateOperationError when it was checked after. And the same update sent twice at once is stored
    once and answered alike (ListChanged → _resubmitted)."""
    import sqlalchemy as sa

    from kroniker.reference_server.tokens import issue, load_or_create_key
    from tests.mhd_support import add_folder, provide_bundle, update_folder
    from tests.server_support import citizen, encode, new_patient, note, source

    with ServerProcess(pg_database_url, care_package_cache.root, tmp_path / "home", workers=2) as server:
        server.start()
        key = load_or_create_key(server.home / "token.key")
        token = issue(key, source())
        engine = sa.create_engine(pg_database_url)
        refused: set[str] = set()
        for _ in range(4):
            p = new_patient("Mappe", "Samtidig")
            made = provide_bundle(note(p))
            add_folder(made)
            first = httpx.post(f"{server.url}/fhir", content=encode(made), timeout=30.0, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
            assert first.status_code == 200, first.text[:500]
            folder_id = first.json()["entry"][1]["response"]["location"].split("/fhir/List/")[1].split("/")[0]
            reader = {"Authorization": f"Bearer {issue(key, citizen(p))}"}
            kept = httpx.get(f"{server.url}/fhir/List/{folder_id}", headers=reader, timeout=30.0).json()
            txs = [provide_bundle(note(p)), provide_bundle(note(p))]
            for tx in txs:
                update_folder(tx, folder_id, kept)
            answers = _at_once(f"{server.url}/fhir", [encode(tx) for tx in txs], token)
            assert sorted(a.status_code for a in answers) in ([200, 409], [200, 422]), [a.text[:500] for a in answers]
            lost = next(a for a in answers if a.status_code != 200).json()
            refused |= {c["code"] for i in lost["issue"] for c in i["details"]["coding"]}
            won = next(a for a in answers if a.status_code == 200).json()
            folder = httpx.get(f"{server.url}/fhir/List/{folder_id}", headers=reader, timeout=30.0).json()
            assert folder["meta"]["versionId"] == "2"
            assert [e["item"]["reference"] for e in folder["entry"]] == [
                *(e["item"]["reference"] for e in kept["entry"]),
                f"DocumentReference/{won['entry'][2]['resource']['id']}"]
            # the same update twice at once: one update, both answered alike
            again = provide_bundle(note(p))
            update_folder(again, folder_id, folder)
            answers = _at_once(f"{server.url}/fhir", [encode(again)] * 2, token)
            assert [a.status_code for a in answers] == [200, 200], [a.text[:500] for a in answers]
            assert [e["response"]["location"] for e in answers[0].json()["entry"]] == \
                [e["response"]["location"] for e in answers[1].json()["entry"]]
            with engine.connect() as conn:
                docs = conn.execute(sa.text("SELECT count(*) FROM documents WHERE patient_cpr = :c"),
                                    {"c": p.cpr}).scalar_one()
            assert docs == 3  # the Folder's first, the winner's, the update sent twice
            folder = httpx.get(f"{server.url}/fhir/List/{folder_id}", headers=reader, timeout=30.0).json()
            assert folder["meta"]["versionId"] == "3"
        assert refused & {"XDSMetadataVersionError", "XDSMetadataUpdateOperationError"}
        engine.dispose()


def _at_once(url: str, bodies: bytes | list[bytes], token: str) -> list[httpx.Response]:
    """Two POSTs (the same body twice, or the two bodies) from two threads, each on a connection of its own (either
    worker may take either), released together by a barrier; both answers."""
    import threading

    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []
    both = bodies if isinstance(bodies, list) else [bodies, bodies]

    def send(body: bytes) -> None:
        with httpx.Client(timeout=30.0) as client:
            barrier.wait(timeout=10)
            answers.append(client.post(url, content=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}))

    threads = [threading.Thread(target=send, args=(body,)) for body in both]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers
