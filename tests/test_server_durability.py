"""A server killed with SIGKILL during a load loses no acknowledged document and leaves no half-written one.

The test does what an operator's worst day does: `kroniker serve` runs as a real process, several GP systems
post distinct valid notes to it, and at a random moment it is killed with SIGKILL (no shutdown code runs). It
is restarted and compared, 20 times on SQLite and 10 on PostgreSQL with one worker, and 10 and 5 times with two
worker processes (which write through one SQLite file, or one PostgreSQL database, at once):

- every document whose submission was answered 201/200 is in the database byte for byte, and comes back so
  when the citizen retrieves it from the restarted server (25 of each round's, chosen at random, over HTTP);
- no document is half-written: each row has its bytes (matching their SHA-256), its derived metadata and
  DocumentReference, and exactly one `submit` audit record; each `submit` record names a stored document;
  the audit log's hash chain is intact (`kroniker audit verify`); an SQLite file passes its integrity check;
- a submission cut off by the kill may have been committed or not; sent again after the restart it is answered
  200 (already stored, the same id) or 201 (stored now), never a conflict. A submission that was not yet stored
  when the database was read may still be answered 200: on PostgreSQL the killed server's COMMIT can land after
  its process is gone (the database finishes what it received), and that is correct — the answer was lost, not
  the document. What counts is that a resent document ends up stored once, byte for byte, under the id the
  resend answered with.

The database is read in one snapshot (one read transaction; REPEATABLE READ on PostgreSQL), so a commit landing
between two reads cannot make documents and their audit records disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from kroniker.reference_server import audit
from kroniker.reference_server.db import audit_events, document_events, documents, make_engine
from kroniker.validators.packages import PackageCache
from tests.server_process import FHIR_JSON, ServerProcess, distinct_note, master_identifier, tokens

ROUNDS = {("sqlite", 1): 20, ("postgresql", 1): 10, ("sqlite", 2): 10, ("postgresql", 2): 5}
CLIENTS = 4  # GP systems posting at once
KILL_WITHIN = (0.05, 1.0)  # seconds after the first acknowledgement of a round
RETRIEVE_PER_ROUND = 25  # acknowledged documents the citizen retrieves over HTTP after each restart


@dataclass
class Sent:
    """A document posted, and what became of it."""

    body: bytes
    master: str
    doc_id: str | None = None  # set when the server acknowledged it (201/200)


@dataclass
class Tally:
    acknowledged: int = 0
    in_flight: int = 0  # cut off by the kill
    in_flight_committed: int = 0  # of those, already stored (the answer was lost, not the document)
    stored: int = 0
    lost: int = 0
    half_written: int = 0
    load_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


# -- the load --------------------------------------------------------------------------------------------

class Load:
    """Client threads posting distinct valid notes until the server stops answering."""

    def __init__(self, url: str, source_token: str, round_no: int) -> None:
        self.url, self.round_no = url, round_no
        self.headers = {"authorization": f"Bearer {source_token}", "content-type": FHIR_JSON}
        self.acked: list[Sent] = []
        self.in_flight: list[Sent] = []
        self.unexpected: list[str] = []
        self.first_ack = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(CLIENTS)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "a client thread hung after the kill"

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            i = 0
            while True:
                i += 1
                body = distinct_note(f"r{self.round_no}-c{n}-{i}")
                sent = Sent(body, master_identifier(body))
                try:
                    r = client.post("/fhir/Bundle", content=body, headers=self.headers)
                except httpx.TransportError:
                    with self.lock:
                        self.in_flight.append(sent)  # the server died with this one on the wire
                    return
                if r.status_code not in (200, 201):
                    with self.lock:
                        self.unexpected.append(f"{r.status_code}: {r.text[:300]}")
                    return
                sent.doc_id = r.json()["id"]
                with self.lock:
                    self.acked.append(sent)
                self.first_ack.set()


# -- what the database holds -------------------------------------------------------------------------------

def half_written(url: str, home: Path) -> tuple[dict[str, bytes], list[str]]:
    """The stored documents (id → bytes) and every sign of a half-written submission (read with the server down)."""
    engine = make_engine(url)
    problems: list[str] = []
    # One snapshot for every read below: REPEATABLE READ on PostgreSQL, one deferred read transaction on SQLite.
    options = {"kroniker_read": True} if url.startswith("sqlite") else {"isolation_level": "REPEATABLE READ"}
    try:
        with engine.connect().execution_options(**options) as conn, conn.begin():
            rows = [dict(r) for r in conn.execute(sa.select(documents)).mappings()]
            event_docs = {r.document_id for r in conn.execute(sa.select(document_events.c.document_id))}
            records = [dict(r) for r in conn.execute(
                sa.select(audit_events).where(audit_events.c.action.in_(("submit", "replace")))).mappings()]
            if url.startswith("sqlite"):
                integrity = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if integrity != ["ok"]:
                    problems.append(f"SQLite's integrity check: {'; '.join(integrity[:5])}")
        tampering = audit.verify(engine, audit.load_key(home / "audit.key"))
    finally:
        engine.dispose()
    stored = {r["id"]: r["content"] for r in rows}
    for r in rows:
        problems += [f"document {r['id']}: {p}" for p in _row_problems(r)]
    for doc_id in event_docs - stored.keys():
        problems.append(f"document_events name {doc_id}, which is not stored")
    first_submits: dict[str, int] = {}
    for rec in records:
        named = json.loads(rec["documents"])
        if rec["outcome"] != "0" or not named:
            problems.append(f"audit record {rec['seq']} ({rec['action']}) names no stored document")
            continue
        if named[0] not in stored:
            problems.append(f"audit record {rec['seq']} records the submission of {named[0]}, which is not stored")
        if not json.loads(rec["detail"]).get("idempotent"):
            first_submits[named[0]] = first_submits.get(named[0], 0) + 1
    for doc_id in stored:
        if first_submits.get(doc_id, 0) != 1:
            problems.append(f"document {doc_id} has {first_submits.get(doc_id, 0)} submit audit records, not 1")
    problems += [f"audit log record {t.seq}: {t.problem}" for t in tampering]
    return stored, problems


def _row_problems(r: dict[str, Any]) -> Iterator[str]:
    content = r["content"]
    if not isinstance(content, bytes) or not content:
        yield "no bytes"
        return
    if hashlib.sha256(content).hexdigest() != r["content_sha256"]:
        yield "its bytes do not match their SHA-256"
    for column in ("master_identifier", "patient_cpr", "status", "type_code", "author_org_sor", "created",
                   "standard", "content_type"):
        if not r[column]:
            yield f"no {column}"
    try:
        docref = json.loads(r["docref"])
        document = json.loads(content)
    except (ValueError, TypeError):
        yield "its DocumentReference or its bytes are not JSON"
        return
    attachment = docref["content"][0]["attachment"]
    if docref.get("id") != r["id"] or docref["masterIdentifier"]["value"] != r["master_identifier"]:
        yield "its DocumentReference is another document's"
    if attachment.get("size") != len(content) or \
            attachment.get("hash") != base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"):
        yield "its DocumentReference describes other bytes"
    if document["entry"][0]["resource"]["identifier"]["value"] != r["master_identifier"]:
        yield "its bytes are another document's"


# -- the test ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_during_load_loses_no_acknowledged_document(database_url: str, package_cache: PackageCache,
                                                           tmp_path: Path, workers: int) -> None:
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    rounds = ROUNDS[(backend, workers)]
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = ServerProcess(database_url, package_cache.root, tmp_path / "home", workers=workers)
    tally = Tally()
    every_ack: dict[str, bytes] = {}
    auth = tokens(server.home)
    with server:
        server.start()
        # One document first, alone: a cold validator compiles its plan on first use and is not yet safe to
        # do so from several threads at once (tests/test_validator_threads.py), which is not what this tests.
        every_ack.update(_submit_one(server.url, auth["source"]))
        for round_no in range(1, rounds + 1):
            round_start = time.monotonic()
            load = Load(server.url, auth["source"], round_no)
            load.start()
            assert load.first_ack.wait(15), f"round {round_no}: nothing acknowledged: {load.unexpected}"
            time.sleep(rng.uniform(*KILL_WITHIN))
            server.kill()
            tally.load_seconds += time.monotonic() - round_start
            load.join(15)
            assert not load.unexpected, f"round {round_no}: unexpected answers: {load.unexpected}"

            stored, problems = half_written(database_url, server.home)
            lost = [s for s in load.acked if stored.get(s.doc_id or "") != s.body]
            tally.acknowledged += len(load.acked)
            tally.in_flight += len(load.in_flight)
            tally.lost += len(lost)
            tally.half_written += len(problems)
            tally.problems += [f"round {round_no}: {p}" for p in problems]
            tally.problems += [f"round {round_no}: acknowledged {s.doc_id} ({s.master}) is not stored as sent"
                               for s in lost]
            every_ack.update({s.doc_id: s.body for s in load.acked if s.doc_id})

            server.start()  # restart and compare: the bytes of all of them were compared above, in the database
            sample = rng.sample(load.acked, min(RETRIEVE_PER_ROUND, len(load.acked)))
            _retrieve(server.url, auth["citizen"], {s.doc_id: s.body for s in sample if s.doc_id}, tally, round_no)
            tally.in_flight_committed += _resend(server.url, auth["source"], load.in_flight, stored, every_ack,
                                                 tally, round_no)
        server.stop()

    stored, problems = half_written(database_url, server.home)
    tally.stored = len(stored)
    tally.half_written += len(problems)
    tally.problems += [f"at the end: {p}" for p in problems]
    missing = [d for d, body in every_ack.items() if stored.get(d) != body]
    tally.lost += len(missing)
    verify = subprocess.run([sys.executable, "-m", "kroniker", "audit", "verify", "--database", database_url],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "KRONIKER_HOME": str(server.home)})
    print(f"\n[durability/{backend}, {workers} worker(s)] seed {seed}: {rounds} SIGKILL restarts during load of "
          f"{CLIENTS} clients "
          f"({tally.load_seconds:.1f} s under load); acknowledged {len(every_ack)} documents "
          f"({tally.acknowledged} during load, {tally.in_flight} resent after a restart, 1 before the load), "
          f"stored {tally.stored}; cut off by the kill {tally.in_flight}, of which already committed "
          f"{tally.in_flight_committed}; lost {tally.lost}; half-written {tally.half_written}; "
          f"`kroniker audit verify`: {verify.stdout.strip() or verify.stderr.strip()}")
    assert not tally.problems, "\n".join(tally.problems[:30])
    assert tally.lost == 0 and tally.half_written == 0
    assert tally.stored == len(every_ack), "a document is stored that no one was told about and no resend found"
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _submit_one(url: str, source_token: str) -> dict[str, bytes]:
    body = distinct_note("warm-up")
    r = httpx.post(f"{url}/fhir/Bundle", content=body, timeout=30.0,
                   headers={"authorization": f"Bearer {source_token}", "content-type": FHIR_JSON})
    assert r.status_code == 201, r.text
    return {r.json()["id"]: body}


def _retrieve(url: str, citizen_token: str, acked: dict[str, bytes], tally: Tally, round_no: int) -> None:
    """The citizen retrieves documents acknowledged before the kill from the restarted server."""
    headers = {"authorization": f"Bearer {citizen_token}"}

    def get(item: tuple[str, bytes]) -> str | None:
        doc_id, body = item
        r = client.get(f"/fhir/Bundle/{doc_id}", headers=headers)
        if r.status_code != 200:
            return f"round {round_no}: retrieving acknowledged {doc_id} after the restart: {r.status_code}"
        if r.content != body:
            return f"round {round_no}: acknowledged {doc_id} comes back changed after the restart"
        return None

    with httpx.Client(base_url=url, timeout=10.0) as client, ThreadPoolExecutor(CLIENTS) as pool:
        failures = [f for f in pool.map(get, acked.items()) if f]
    tally.lost += len(failures)
    tally.problems += failures


def _resend(url: str, source_token: str, in_flight: list[Sent], stored_before: dict[str, bytes],
            every_ack: dict[str, bytes], tally: Tally, round_no: int) -> int:
    """Send again what the kill cut off: 200 and the same id if it had been committed, 201 if not.

    A document not seen in the database read after the kill may still be answered 200, when the killed server's
    commit landed after that read; its bytes under the answered id are compared at the end with the rest."""
    committed = 0
    headers = {"authorization": f"Bearer {source_token}", "content-type": FHIR_JSON}
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for sent in in_flight:
            stored_as = next((i for i, body in stored_before.items() if body == sent.body), None)
            r = client.post("/fhir/Bundle", content=sent.body, headers=headers)
            allowed = (200,) if stored_as else (200, 201)
            doc_id = r.json().get("id") if r.status_code in allowed else None
            if doc_id is None or (stored_as and doc_id != stored_as):
                tally.problems.append(f"round {round_no}: resending {sent.master} after the restart: "
                                      f"{r.status_code}, expected one of {allowed} (id {stored_as}): {r.text[:200]}")
                continue
            committed += r.status_code == 200
            every_ack[doc_id] = sent.body
    return committed
