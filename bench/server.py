"""Benchmark: the reference server on loopback — submissions per second with validation, against the validator
alone on the same documents, and search latency over 100,000 stored documents, on SQLite and PostgreSQL.

    python bench/server.py [--documents 100000] [--seconds 5] [--clients 8] [--skip-postgres]

Prints, in one run:
- submissions per second (POST /fhir/Bundle of distinct valid Shared Notes over --clients kept-alive
  connections, answered 201) to `kroniker serve` started as a subprocess: 1 and 2 workers on SQLite and on
  PostgreSQL; each a fresh database, each measured for --seconds;
- validator-only throughput on the same documents (`Validator(cache).validate(bytes)`, one process), measured
  just before each server, and the ratio (target: submissions at least half of it); beside it the throughput
  of as many validator processes as the server has workers, and that ratio (the same number of CPUs at work);
- where one submission's time goes, measured in process step by step (validation, metadata, the
  DocumentReference's own validation, the store's transaction, the answer);
- a questionnaire response submitted, scored and stored (POST /fhir/QuestionnaireResponse as the citizen) against
  a note submission, one at a time on the same SQLite server, and the ratio (issue 12's target: ≤ 2×);
- search latency, p50 and p99 over --seconds of sequential requests as a clinician with a treatment relation,
  with --documents documents seeded straight into the store (10 per patient, metadata derived from real notes:
  half of them package notes made by kroniker's note builder, half other Shared Notes), on SQLite and
  PostgreSQL (target: p99 ≤ 50 ms): a patient's current documents (`GET /fhir/DocumentReference?
  patient.identifier=…&status=current`) and the patient's package notes (`…&event=<the package's event code>`,
  which every second stored document carries), and the first again answered in FHIR XML, with the XML/JSON
  ratio of their medians.

Everything runs on loopback, with the load generator (one asyncio loop, LoadClient) in this process: on a small
machine it takes CPU from the server, which the figures include. Temporary directories and PostgreSQL schemas
are removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOCS_PER_PATIENT = 10
CLINICIAN_AUTH_ID = "7AB3C"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


# -- documents ----------------------------------------------------------------------------------------------

def submissions(n: int) -> list[bytes]:
    """n distinct valid Shared Notes (the same list for every server configuration: each has a fresh database)."""
    from tests.server_process import distinct_note

    return [distinct_note(f"bench-{i}") for i in range(n)]


def cpr_of(patient: int) -> str:
    """A distinct ten-digit CPR-shaped number per patient (ddmmyy + four digits; fictitious)."""
    day, month, year = patient % 28 + 1, patient // 28 % 12 + 1, patient // 336 % 100
    return f"{day:02d}{month:02d}{year:02d}{1000 + patient % 9000:04d}"


@dataclass
class Template:
    """A real note, validated, with the metadata the server derived from it: what seeded rows are copied from."""

    content: bytes
    row: dict[str, Any]
    docref: str
    events: list[tuple[str | None, str]]
    cpr: str
    replace: dict[str, str]  # strings in content and DocumentReference that each copy gets its own of


def package_note(content: Any, i: int) -> dict[str, Any]:
    """A package note as `kroniker note build` makes it, for the builders' test patient."""
    from kroniker.clinical.note import build_note
    from tests.builders import CLINIC, PATIENT

    return build_note({
        "patient": {"cpr": PATIENT["cpr"], "given": "Bente", "family": "Lænderyg"},
        "author": {"given": "Jens", "family": "Holm", "authorisation": "0C4QN"},
        "clinic": {"sor": CLINIC["sor"], "name": "Lægerne i Kronikergården", "ydernummer": "054321"},
        "date": f"2026-11-{i + 10:02d}T09:15:00+01:00", "diagnosis": "L03",
        "goals": f"Gå {20 + i} minutter fem dage om ugen", "plan": "Hjemmeøvelser fra fysioterapeut",
        "next_control": "2027-11-20", "triage_colour": "green",
        "scores": {"startback.total": i, "startback.risk": "low"}, "free_text": f"Kontrol {i}. Smerter stabile.",
    }, content)


def templates(validator: Any, content: Any, count: int = 4) -> list[Template]:
    from kroniker.reference_server.metadata import derive
    from tests.builders import PATIENT, shared_note

    out = []
    for i in range(count):
        # Every second one is a package note (its event code is the package's), the others ordinary notes.
        bundle = package_note(content, i) if i % 2 else shared_note(
            f"<p>Kontrol {i}: smerter NRS {i + 2}/10. Øvelser fortsættes.</p>", name=f"seed-{i}")
        content_bytes = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
        report = validator.validate(content_bytes)
        assert report.valid and report.standard is not None, f"seed template {i} is not valid"
        meta = derive(bundle, report.standard.name, report.standard.version, "application/fhir+json",
                      content_bytes)
        docref = json.dumps(meta.docref, ensure_ascii=False)
        row = {k: getattr(meta, k) for k in (
            "type_system", "type_code", "category_code", "format_code", "facility_code", "practice_code",
            "confidentiality", "language", "author_org_sor", "author_org_name", "author_person")}
        row["standard"] = str(report.standard)
        entry_ident = meta.docref["identifier"][0]["value"]
        out.append(Template(content_bytes, row, docref, meta.events, PATIENT["cpr"], {
            "id": meta.id, "master": meta.master_identifier, "entry": entry_ident, "bundle": bundle["id"],
            "bundle_ident": bundle["identifier"]["value"], "hash": meta.docref["content"][0]["attachment"]["hash"]}))
    return out


def seeded_rows(tpls: list[Template], documents: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Rows for `documents` and `document_events`: DOCS_PER_PATIENT per patient, each with its own identifiers,
    bytes, hash and times, and the patient's CPR wherever the real document has it."""
    start = dt.datetime(2024, 1, 1)
    for n in range(documents):
        patient, k = divmod(n, DOCS_PER_PATIENT)
        t = tpls[k % len(tpls)]
        cpr = cpr_of(patient)
        master = f"urn:uuid:{uuid.uuid4()}"
        doc_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kroniker:documentreference:{master}"))
        content = (t.content.replace(t.replace["master"].encode(), master.encode())
                   .replace(t.replace["bundle"].encode(), str(uuid.uuid4()).encode())
                   .replace(t.replace["bundle_ident"].encode(), f"urn:uuid:{uuid.uuid4()}".encode())
                   .replace(t.cpr.encode(), cpr.encode()))
        sha1 = base64.b64encode(hashlib.sha1(content).digest()).decode("ascii")
        entry = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'entry:' + master)}"
        docref = (t.docref.replace(t.replace["id"], doc_id).replace(t.replace["master"], master)
                  .replace(t.replace["entry"], entry).replace(t.replace["hash"], sha1).replace(t.cpr, cpr))
        when = start + dt.timedelta(days=(n * 7919) % 700, minutes=n % 1440)
        row = {**t.row, "id": doc_id, "master_identifier": master,
               "content_sha256": hashlib.sha256(content).hexdigest(), "content": content,
               "content_type": "application/fhir+json", "patient_cpr": cpr, "status": "current",
               "title": f"Journalnotat for {cpr}", "service_start": when, "service_end": None, "doc_date": when,
               "created": when + dt.timedelta(hours=1), "replaces": None, "status_reason": None,
               "submitter_sor": t.row["author_org_sor"], "docref": docref}
        yield row, [{"document_id": doc_id, "system": s, "code": c, "patient_cpr": cpr} for s, c in t.events]


def seed(url: str, tpls: list[Template], documents: int, clinic_sor: str) -> float:
    """Migrate, bulk insert the documents and a treatment relation per patient, ANALYZE: seconds taken."""
    import sqlalchemy as sa

    from kroniker.reference_server.db import document_events, make_engine, migrate, treatment_relations
    from kroniker.reference_server.db import documents as documents_table

    started = time.perf_counter()
    engine = make_engine(url)
    migrate(engine)
    batch: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def flush(conn: sa.Connection) -> None:
        if batch:
            conn.execute(documents_table.insert(), batch)
        if events:
            conn.execute(document_events.insert(), events)
        batch.clear()
        events.clear()

    try:
        with engine.begin() as conn:
            for row, evs in seeded_rows(tpls, documents):
                batch.append(row)
                events.extend(evs)
                if len(batch) >= 2000:
                    flush(conn)
            flush(conn)
            patients = (documents + DOCS_PER_PATIENT - 1) // DOCS_PER_PATIENT
            long_ago = dt.datetime(2020, 1, 1)
            conn.execute(treatment_relations.insert(), [
                {"id": str(uuid.uuid4()), "patient_cpr": cpr_of(p), "clinician_auth_id": None, "org_sor": clinic_sor,
                 "evidence": "assigned-gp", "start": long_ago, "end": None, "created": long_ago}
                for p in range(patients)])
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return time.perf_counter() - started


# -- PostgreSQL schemas -------------------------------------------------------------------------------------

class Schemas:
    """Fresh PostgreSQL schemas in the test database, each dropped at the end."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def new(self) -> str:
        from tests.postgres import new_schema

        name, url = new_schema("kroniker_bench_")
        self.made.append(name)
        return url

    def drop_all(self) -> None:
        from tests.postgres import drop_schema

        for name in self.made:
            drop_schema(name)
        self.made.clear()


# -- measurements -------------------------------------------------------------------------------------------

def validator_only(validator: Any, docs: list[bytes], seconds: float) -> float:
    """Documents per second, validating the submissions' documents one after another in this process."""
    validator.validate(docs[0])
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    for d in docs[1:]:
        report = validator.validate(d)
        assert report.valid
        n += 1
        if time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start)


_FORKED: tuple[Any, list[bytes], float] | None = None  # what forked validator processes inherit


def _validate_share(share: int, processes: int) -> tuple[int, float]:
    assert _FORKED is not None
    validator, docs, seconds = _FORKED
    mine = docs[share::processes]
    validator.validate(mine[0])
    n, start = 0, time.perf_counter()
    for d in mine[1:]:
        assert validator.validate(d).valid
        n += 1
        if time.perf_counter() - start >= seconds:
            break
    return n, time.perf_counter() - start


def validator_processes(validator: Any, docs: list[bytes], seconds: float, processes: int) -> float:
    """Documents per second of `processes` validator processes at once (forked from this one: the same
    validator, its plans compiled), each validating its share one after another: the baseline for a server
    with as many workers."""
    import multiprocessing

    global _FORKED
    if processes == 1:
        return validator_only(validator, docs, seconds)
    _FORKED = (validator, docs, seconds)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.starmap(_validate_share, [(i, processes) for i in range(processes)])
    _FORKED = None
    return sum(n / took for n, took in results)


class LoadClient:
    """The submissions' load generator: `clients` HTTP/1.1 connections kept alive, each posting one document
    after another, in one asyncio loop (a thread of its own).

    A load generator on the server's own machine takes CPU from the server, so it should take as little as
    it can (as wrk does): requests are written as bytes ready-made and answers read by their Content-Length.
    httpx, which the tests use, costs about 0.45 ms of CPU per request here, a sixth of what the server
    spends on a submission.
    """

    def __init__(self, url: str, token: str, clients: int) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token, self.clients = token, clients

    def request(self, body: bytes) -> bytes:
        return (f"POST /fhir/Bundle HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nContent-Type: application/fhir+json\r\n"
                f"Accept: application/fhir+json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    def run(self, docs: list[bytes], seconds: float) -> tuple[list[float], list[str]]:
        """(times at which each 201 arrived, unexpected answers), posting until `seconds` pass or `docs` end."""
        import asyncio

        requests = iter([self.request(d) for d in docs])
        done: list[float] = []
        errors: list[str] = []

        async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> None:
            try:
                while time.perf_counter() < deadline:
                    req = next(requests, None)
                    if req is None:
                        return
                    writer.write(req)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    answer = await reader.readexactly(length)
                    if status == 201:
                        done.append(time.perf_counter())
                    else:
                        errors.append(f"{status}: {answer[:200].decode('utf-8', 'replace')}")
            finally:
                writer.close()

        async def all_of_them() -> None:
            # The connections are opened one after another, as clients arrive, not in one burst: workers that
            # share a listening socket race to accept, and one that wakes first may take a whole burst.
            opened = [await asyncio.open_connection(self.host, self.port) for _ in range(self.clients)]
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(post(r, w, deadline) for r, w in opened))

        asyncio.run(all_of_them())
        return done, errors


def warm_up(url: str, token: str, docs: list[bytes]) -> None:
    """A few submissions alone, as any client (httpx) sends them: each answered 201 with its DocumentReference."""
    import httpx

    from tests.server_process import FHIR_JSON

    headers = {"authorization": f"Bearer {token}", "content-type": FHIR_JSON}
    with httpx.Client(base_url=url, timeout=30.0) as c:
        for d in docs:
            r = c.post("/fhir/Bundle", content=d, headers=headers)
            assert r.status_code == 201 and r.json()["resourceType"] == "DocumentReference", r.text[:500]


def submit_rate(url: str, token: str, docs: list[bytes], clients: int, seconds: float) -> tuple[float, int, list[str]]:
    """(submissions answered 201 per second, how many, unexpected answers) with `clients` connections."""
    done, errors = LoadClient(url, token, clients).run(docs, seconds)
    if len(done) < 2:
        return 0.0, len(done), errors
    return (len(done) - 1) / (max(done) - min(done)), len(done), errors


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and its children (Linux /proc; else None)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    try:
        while todo:
            p = todo.pop()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    except (OSError, ValueError, IndexError):
        return None
    return total


def one_at_a_time(url: str, token: str, docs: list[bytes]) -> float:
    """Median milliseconds of one submission over HTTP with nothing else going on."""
    import httpx

    from tests.server_process import FHIR_JSON

    headers = {"authorization": f"Bearer {token}", "content-type": FHIR_JSON}
    out = []
    with httpx.Client(base_url=url, timeout=30.0) as c:
        for d in docs:
            t = time.perf_counter()
            r = c.post("/fhir/Bundle", content=d, headers=headers)
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 201, r.text[:300]
    return statistics.median(out[5:])


def one_response_at_a_time(url: str, token: str, cpr: str, count: int) -> float:
    """Median milliseconds of one questionnaire response submitted over HTTP (checked, scored, stored)."""
    import httpx

    from tests.clinical_support import patient_response
    from tests.server_process import FHIR_JSON

    headers = {"authorization": f"Bearer {token}", "content-type": FHIR_JSON}
    out = []
    with httpx.Client(base_url=url, timeout=30.0) as c:
        for i in range(count):
            response = patient_response(startback=tuple(bool((i >> b) & 1) for b in range(8)))
            response["subject"]["identifier"]["value"] = cpr
            body = json.dumps(response).encode()
            t = time.perf_counter()
            r = c.post("/fhir/QuestionnaireResponse", content=body, headers=headers)
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 201, r.text[:300]
    return statistics.median(out[5:])


def search_latencies(url: str, token: str, patients: int, seconds: float,
                     extra: dict[str, str] | None = None, xml: bool = False) -> tuple[list[float], int]:
    """Milliseconds per search (the patient's current documents, and `extra` parameters), sequential requests
    for random patients, and how many documents each found; in FHIR XML when `xml`."""
    import random

    import httpx
    from lxml import etree

    rng = random.Random(7)
    headers = {"authorization": f"Bearer {token}", "accept": "application/fhir+xml" if xml else "application/fhir+json"}
    safe = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    out: list[float] = []
    found = set()
    with httpx.Client(base_url=url, timeout=30.0) as c:
        def one() -> float:
            params = {"patient.identifier": f"{CPR_SYSTEM}|{cpr_of(rng.randrange(patients))}", "status": "current",
                      **(extra or {})}
            t = time.perf_counter()
            r = c.get("/fhir/DocumentReference", params=params, headers=headers)
            ms = (time.perf_counter() - t) * 1000
            assert r.status_code == 200, r.text[:300]
            if xml:
                total = etree.fromstring(r.content, safe).find("{http://hl7.org/fhir}total")
                found.add(int(total.get("value")))
            else:
                found.add(r.json()["total"])
            return ms

        for _ in range(50):  # warm: connections, plans, caches
            one()
        deadline = time.perf_counter() + seconds
        while (time.perf_counter() < deadline and len(out) < 5000) or len(out) < 300:
            out.append(one())
    assert len(found) == 1, f"searches found different numbers of documents: {sorted(found)}"
    return out, found.pop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def where_time_goes(validator: Any, docs: list[bytes], urls: dict[str, str]) -> list[tuple[str, float]]:
    """Milliseconds per submission for each step the server takes, in process (no HTTP), median of many."""
    from kroniker.reference_server.audit import AuditRecord
    from kroniker.reference_server.db import make_engine, migrate
    from kroniker.reference_server.metadata import derive
    from kroniker.reference_server.store import Store
    from kroniker.reference_server.tokens import Principal
    from kroniker.validators.source import parse
    from tests.builders import CLINIC

    steps: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        steps.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return value

    stores = {}
    for label, url in urls.items():
        engine = make_engine(url)
        migrate(engine)
        stores[label] = Store(engine, b"bench-audit-key-" * 4)
    principal = Principal("source", sor=CLINIC["sor"])
    try:
        for body in docs:  # the server's steps, in its order (app._submit)
            parsed = timed("read the document (JSON)", lambda b=body: parse(b))
            report = timed("validate it", lambda p=parsed: validator.validate_parsed(p))
            data = parsed.data
            meta = timed("derive the metadata", lambda d=data, b=body, r=report: derive(
                d, r.standard.name, r.standard.version, "application/fhir+json", b))
            meta.docref["content"][0]["attachment"]["url"] = f"http://127.0.0.1/fhir/Bundle/{meta.id}"
            bundled = [e["resource"] for e in data["entry"]]  # as the server does: validated with the document
            timed("validate the DocumentReference", lambda m=meta, r=report, t=bundled: validator.validate_resource(
                m.docref, m.profile, r.standard, trusted=t))
            for label, store in stores.items():
                detail = {"master_identifier": meta.master_identifier, "standard": str(report.standard)}
                rec = AuditRecord("submit", principal, patient_cpr=meta.patient_cpr, purpose="TREAT", detail=detail)
                stored, _ = timed(f"store + audit, one transaction ({label})", lambda s=store, m=meta, b=body, r=rec,
                                  rep=report: s.submit(m, b, "application/fhir+json", str(rep.standard),
                                                       principal.sor or "", r))
            timed("the answer (DocumentReference as JSON)",
                  lambda s=stored: json.dumps(s.docref("http://127.0.0.1")).encode())
    finally:
        for store in stores.values():
            store.engine.dispose()
    return [(name, statistics.median(ms)) for name, ms in steps.items()]


# -- the run ----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--documents", type=int, default=100_000, help="documents stored for the search latency")
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    ap.add_argument("--clients", type=int, default=8, help="connections posting at once (GP systems)")
    ap.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    if not (args.shared / "fhir-packages").is_dir():
        print(f"needs MedCom's packages in {args.shared}/fhir-packages", file=sys.stderr)
        return 2
    postgres = not args.skip_postgres
    from tests.postgres import pg_reachable

    if postgres and (why := pg_reachable()):
        print(f"{why}; use --skip-postgres", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="kroniker-bench-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        os.environ["KRONIKER_HOME"] = str(tmpdir / "home")  # plans and the token key: here, not in ~/.kroniker
        schemas = Schemas()
        if postgres:
            stack.callback(schemas.drop_all)
        run(args, tmpdir, schemas if postgres else None)
    return 0


def run(args: argparse.Namespace, tmpdir: Path, schemas: Schemas | None) -> None:
    from kroniker.clinical import Content
    from kroniker.clinical.build import build, source_folders
    from kroniker.clinical.note import note_profiles
    from kroniker.packages import Installer
    from kroniker.reference_server.tokens import Principal, issue, load_or_create_key
    from kroniker.validators.packages import PackageCache
    from kroniker.validators.validate import Validator
    from tests.builders import CLINIC
    from tests.server_process import ServerProcess, tokens

    cache = PackageCache(tmpdir / "packages")
    Installer(cache, registries=[]).install([str(args.shared / "fhir-packages")])
    for source_folder in source_folders():  # kroniker's own packages, as `kroniker package build` makes them
        build(source_folder, tmpdir / "dist")
    Installer(cache, registries=[]).install([str(tmpdir / "dist")], with_dependencies=False)
    content = Content(cache)
    validator = Validator(cache)
    home = Path(os.environ["KRONIKER_HOME"])
    source = tokens(home)["source"]
    clinician = issue(load_or_create_key(home / "token.key"),
                      Principal("clinician", sor=CLINIC["sor"], auth_id=CLINICIAN_AUTH_ID, name="Bench Læge"))

    per_config = max(200, int(args.seconds * 1500))  # more than a server can take in the time
    docs = submissions(per_config + 200)
    print(f"kroniker reference server on loopback; {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} "
          f"at the start); {args.clients} connections from a load generator in this process; "
          f"{args.seconds:g} s per measurement\n")

    # Each server configuration is measured against the validator alone on the same documents, just before it
    # (a shared machine's load comes and goes; the ratio is what this measures): one validator process, the
    # issue's baseline, and as many validator processes as the server has workers (the same CPUs at work).
    configs = [("SQLite", 1), ("SQLite", 2)]
    if schemas:
        configs += [("PostgreSQL", 1), ("PostgreSQL", 2)]
    print(f"{'submissions (POST /fhir/Bundle, validated)':<30} {'documents/s':>11} {'validator/s':>11} "
          f"{'ratio':>6} {'N validators/s':>14} {'ratio':>6} {'answered':>9} {'server CPU':>10} {'validator':>9}")
    for n, (backend, workers) in enumerate(configs):
        baseline = validator_only(validator, docs, args.seconds)
        same_cpus = validator_processes(validator, docs, args.seconds, workers)
        url = f"sqlite:///{tmpdir / f'submit-{n}.db'}" if backend == "SQLite" else schemas.new()  # type: ignore[union-attr]
        with ServerProcess(url, cache.root, home, workers=workers, log=tmpdir / f"submit-{n}.log") as server:
            server.start()
            assert server.proc is not None
            warm_up(server.url, source, docs[:3])
            cpu_before = tree_cpu_seconds(server.proc.pid)
            rate, count, errors = submit_rate(server.url, source, docs[3:per_config], args.clients, args.seconds)
            cpu_after = tree_cpu_seconds(server.proc.pid)
        label = f"{backend}, {workers} worker{'s' if workers > 1 else ''}"
        cpu_ms = f"{(cpu_after - cpu_before) * 1000 / count:.2f}" if cpu_before is not None and cpu_after is not None \
            and count else "?"
        print(f"{label:<30} {rate:>11,.0f} {baseline:>11,.0f} {rate / baseline:>6.2f} {same_cpus:>14,.0f} "
              f"{rate / same_cpus:>6.2f} {count:>9,} {cpu_ms:>10} {1000 / baseline:>9.2f}"
              + (f"  ({len(errors)} unexpected answers, first: {errors[0]})" if errors else ""))
    print("(validator/s: the same documents validated one after another in one process, no server; N validators/s:"
          "\n as many validator processes as the server has workers; server CPU: ms of CPU the server's processes"
          "\n used per submission answered while measured; validator: ms per document of one validator process;"
          "\n target: documents/s at least half of validator/s)")

    urls = {"SQLite": f"sqlite:///{tmpdir / 'steps.db'}"}
    if schemas:
        urls["PostgreSQL"] = schemas.new()
    steps = where_time_goes(validator, docs[per_config:per_config + 200], urls)
    print("\nwhere a submission's time goes (in process, no HTTP; median ms per document)")
    for name, ms in steps:
        print(f"  {name:<56} {ms:>7.2f} ms")
    with ServerProcess(f"sqlite:///{tmpdir / 'single.db'}", cache.root, home, log=tmpdir / "single.log") as server:
        server.start()
        single = one_at_a_time(server.url, source, docs[:100])
        # Issue 12: a questionnaire response submitted, checked, scored and stored with its score Observations
        # (POST /fhir/QuestionnaireResponse as the citizen) against a note submission, on the same server, now.
        citizen = issue(load_or_create_key(home / "token.key"), Principal("citizen", cpr=cpr_of(1), name="Bench"))
        answered = one_response_at_a_time(server.url, citizen, cpr_of(1), 100)
        noted = one_at_a_time(server.url, source, docs[100:200])
    in_process = sum(ms for name, ms in steps if "PostgreSQL" not in name)
    print(f"  {'one submission over HTTP, nothing else going on (SQLite)':<56} {single:>7.2f} ms")
    print(f"  {'  of which HTTP, routing, thread pool, client':<56} {single - in_process:>7.2f} ms")
    print(f"\na response submitted, scored and stored vs a note submission (SQLite, one at a time, median; target ≤ 2×)"
          f"\n  {'POST /fhir/QuestionnaireResponse (citizen)':<56} {answered:>7.2f} ms"
          f"\n  {'POST /fhir/Bundle (GP system)':<56} {noted:>7.2f} ms"
          f"\n  {'ratio':<56} {answered / noted:>7.2f}×")

    tpls = templates(validator, content)
    # The package's event code as its note profile states it (the package data's one setting).
    package_events = [f"{p.coding['system']}|{p.coding['code']}" for p in note_profiles(content)]
    assert len(package_events) == 1, f"one installed note profile, found {package_events}"
    print(f"\nsearch (GET /fhir/DocumentReference?patient.identifier=…&status=current[&event=…] as a clinician with a "
          f"treatment relation;\n        {args.documents:,} documents stored, {DOCS_PER_PATIENT} per patient, half of "
          f"them package notes; sequential requests)")
    print(f"{'database':<12} {'search':<22} {'seeded in':>10} {'searches':>9} {'found':>6} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8}")
    patients = (args.documents + DOCS_PER_PATIENT - 1) // DOCS_PER_PATIENT
    for backend in ["SQLite"] + (["PostgreSQL"] if schemas else []):
        url = f"sqlite:///{tmpdir / 'search.db'}" if backend == "SQLite" else schemas.new()  # type: ignore[union-attr]
        took = seed(url, tpls, args.documents, CLINIC["sor"])
        with ServerProcess(url, cache.root, home, log=tmpdir / f"search-{backend}.log") as server:
            server.start()
            p50: dict[bool, float] = {}
            for label, extra, xml in (("current documents", {}, False),
                                      ("package notes (event)", {"event": package_events[0]}, False),
                                      ("current, as FHIR XML", {}, True)):
                ms, found = search_latencies(server.url, clinician, patients, args.seconds, extra, xml)
                if not extra:
                    p50[xml] = percentile(ms, 50)
                print(f"{backend:<12} {label:<22} {took:>9.1f}s {len(ms):>9,} {found:>6} {percentile(ms, 50):>8.1f} "
                      f"{percentile(ms, 99):>8.1f} {max(ms):>8.1f}")
            print(f"{backend:<12} {'XML / JSON (p50)':<22} {p50[True] / p50[False]:>47.2f}×")
    print(f"(event = {package_events[0]}: the package's event code, which only the package notes carry;"
          f"\n target: p99 ≤ 50 ms for every search on both databases, the XML answer included)")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    sys.exit(main())
