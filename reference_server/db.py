"""The store's tables (SQLAlchemy Core) and the database engine: SQLite by default, PostgreSQL by URL.

One Alembic migration history for the whole project lives in `migrations/`; the DPIA register adds its
tables to it. The tables here are the schema's single description; migrations create them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.compiler import SQLCompiler

try:
    import fcntl
except ImportError:  # not POSIX: the worker processes queue in SQLite's busy handler instead
    fcntl = None  # type: ignore[assignment]

metadata = sa.MetaData()

documents = sa.Table(
    "documents", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the DocumentReference's id
    sa.Column("master_identifier", sa.String(200), nullable=False, unique=True),  # XDS uniqueId
    sa.Column("content_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("content", sa.LargeBinary, nullable=False),  # the document exactly as submitted
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("standard", sa.String(80), nullable=False),
    sa.Column("patient_cpr", sa.String(10), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("type_system", sa.String(200), nullable=False),
    sa.Column("type_code", sa.String(64), nullable=False),
    sa.Column("category_code", sa.String(64)),
    sa.Column("format_code", sa.String(100)),
    sa.Column("facility_code", sa.String(64)),
    sa.Column("practice_code", sa.String(64)),
    sa.Column("confidentiality", sa.String(10)),
    sa.Column("language", sa.String(10)),
    sa.Column("author_org_sor", sa.String(20), nullable=False),
    sa.Column("author_org_name", sa.String(200)),
    sa.Column("author_person", sa.String(200)),
    sa.Column("title", sa.String(200)),
    sa.Column("service_start", sa.DateTime),
    sa.Column("service_end", sa.DateTime),
    sa.Column("doc_date", sa.DateTime),  # Composition.date
    sa.Column("created", sa.DateTime, nullable=False),  # when the server registered it
    sa.Column("replaces", sa.String(64), sa.ForeignKey("documents.id")),
    sa.Column("status_reason", sa.Text),
    sa.Column("submitter_sor", sa.String(20)),
    sa.Column("docref", sa.Text, nullable=False),  # the derived DocumentReference (JSON)
    # meta.versionId: 1 when stored, one more at each status change (migration 0006); updated: when.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated", sa.DateTime),
    sa.Index("ix_documents_patient_status_created", "patient_cpr", "status", "created"),
    sa.Index("ix_documents_patient_type", "patient_cpr", "type_code"),
)

document_events = sa.Table(
    "document_events", metadata,
    sa.Column("document_id", sa.String(64), sa.ForeignKey("documents.id"), nullable=False),
    sa.Column("system", sa.String(200)),
    sa.Column("code", sa.String(64), nullable=False),
    # The document's patient again (migration 0004): a search by event code reads one patient's rows by index.
    sa.Column("patient_cpr", sa.String(10), nullable=False),
    sa.Index("ix_document_events_code", "code", "document_id"),
    sa.Index("ix_document_events_patient_code", "patient_cpr", "code", "system"),
)

# Each status a document has had, by version (vread, _history).
document_versions = sa.Table(
    "document_versions", metadata,
    sa.Column("document_id", sa.String(64), sa.ForeignKey("documents.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("recorded", sa.DateTime, nullable=False),
)

treatment_relations = sa.Table(
    "treatment_relations", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("patient_cpr", sa.String(10), nullable=False, index=True),
    sa.Column("clinician_auth_id", sa.String(20)),  # none: anyone at the organisation
    sa.Column("org_sor", sa.String(20)),
    sa.Column("evidence", sa.String(40), nullable=False),  # referral, assigned-gp, hospital-contact, …
    sa.Column("start", sa.DateTime, nullable=False),
    sa.Column("end", sa.DateTime),
    sa.Column("created", sa.DateTime, nullable=False),
)

# Questionnaire responses, their score Observations and triage ClinicalImpressions (issue 12), as the FHIR JSON the
# server answers; `kind` says which: patient-response, assessment, score, suggestion, decision; and the MHD Lists
# of ITI-65, submissionset and folder.
clinical_resources = sa.Table(
    "clinical_resources", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("patient_cpr", sa.String(10), nullable=False),
    sa.Column("questionnaire", sa.String(300)),
    sa.Column("derived_from", sa.String(64)),  # a score's response, a decision's suggestion
    sa.Column("submitter", sa.String(200), nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    # An MHD SubmissionSet's or Folder's XDS uniqueId (migration 0008): unique, so a second one is refused.
    sa.Column("unique_id", sa.String(300)),
    sa.Index("ix_clinical_resources_patient_type_created", "patient_cpr", "resource_type", "created"),
    sa.Index("ix_clinical_resources_unique_id", "unique_id", unique=True),
)

blocks = sa.Table(
    "blocks", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("patient_cpr", sa.String(10), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # professional | organisation | period | general
    sa.Column("clinician_auth_id", sa.String(20)),
    sa.Column("org_sor", sa.String(20)),
    sa.Column("period_start", sa.DateTime),
    sa.Column("period_end", sa.DateTime),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("lifted", sa.DateTime),
    sa.Column("lifted_by", sa.String(100)),
)

# Citizens who read another citizen's documents (migration 0007): a parent with custody (forældremyndighed) of a
# child under 15, or someone the subject gave power of attorney (Digital Fuldmagt); valid from start until end
# (an ended proxy keeps its row, with who ended it).
proxies = sa.Table(
    "proxies", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # custody | fuldmagt
    sa.Column("holder_cpr", sa.String(10), nullable=False, index=True),
    sa.Column("subject_cpr", sa.String(10), nullable=False, index=True),
    sa.Column("start", sa.DateTime, nullable=False),
    sa.Column("end", sa.DateTime),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("ended_by", sa.String(100)),
)

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("recorded", sa.DateTime, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(2), nullable=False),  # FHIR AuditEvent.outcome: 0, 4, 8, 12
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("actor_name", sa.String(200)),
    sa.Column("org_sor", sa.String(20)),
    sa.Column("org_name", sa.String(200)),
    # What was asked, in a safe bounded form (audit.append escapes and truncates, and says so in `detail`): a
    # refusal is recorded whatever the patient value was.
    sa.Column("patient_cpr", sa.String(64), index=True),
    sa.Column("documents", sa.Text, nullable=False),  # JSON list of document ids
    sa.Column("purpose", sa.String(40)),
    sa.Column("reason", sa.Text),
    sa.Column("override", sa.Boolean, nullable=False),
    sa.Column("override_reason", sa.String(40)),
    sa.Column("minlog", sa.Boolean, nullable=False),  # shown in the citizen's MinLog
    sa.Column("detail", sa.Text, nullable=False),  # JSON: query, status, …
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # A submission's record carries the stored bytes' SHA-256 (the chain covers each document and its patient).
    sa.Column("content_sha256", sa.String(64)),
)

audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Records up to here were hashed with unkeyed SHA-256 (before migration 0003); the next one re-keys the chain.
    sa.Column("keyed_from", sa.Integer, nullable=False, server_default="0"),
)


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite is set up for durable, concurrent use (WAL, synchronous=FULL)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a crash
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front, so they queue here rather than fail at commit; reads
            # (reading()) take a WAL snapshot and neither wait for writers nor hold them up.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("kroniker_read") else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Writer:
    """The one connection through which this process writes, one transaction at a time.

    Writes queue here, not in the database: threads of this process on a lock, and on SQLite the worker
    processes on an flock of a file beside the database (SQLite's own busy handler makes a waiting writer sleep
    in steps of up to 100 ms, so writers queueing there spend more time asleep than writing). On PostgreSQL the
    audit log's head row serialises writers anyway, so one connection per process loses nothing. Keeping that
    connection open spares each write a pool checkout and return; one idle for a while is returned to the
    pool and a fresh one checked out (on PostgreSQL with the pool's pre-ping).
    """

    IDLE_SECONDS = 30.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._used = 0.0
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._lock_path = f"{path}-writer.lock" if path and path != ":memory:" and fcntl is not None else None
        self._fd: int | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock, self._file_lock():
            conn = self._connection()
            try:
                with conn.begin():
                    yield conn
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated or conn.invalidated:
                    self._drop()
                raise
            finally:
                self._used = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._drop()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and (conn.closed or conn.invalidated or time.monotonic() - self._used > self.IDLE_SECONDS):
            self._drop()
            conn = None
        if conn is None:
            conn = self._conn = self.engine.connect()
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):  # a broken connection is closed as well as it can be
                self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self._lock_path is None:
            yield
            return
        if self._fd is None:
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class Compiled:
    """A Core statement compiled once for one dialect and run straight on the DBAPI cursor.

    The store's hot path (a submission and its audit record) runs the same few statements thousands of
    times; there SQLAlchemy's work per execution (cache key, execution context, result set-up) costs more
    than the database's. The statement is still SQLAlchemy's, compiled by its compiler, and each value goes
    through its column type's own bind processor, so what is written reads back through SQLAlchemy exactly as
    if SQLAlchemy had written it.
    """

    def __init__(self, stmt: sa.sql.ClauseElement, dialect: sa.Dialect) -> None:
        self._compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        self.sql = self._compiled.string
        self._order = self._compiled.positiontup  # positional paramstyles (SQLite); None for named (psycopg)
        self._processors: dict[str, Any] = {}
        for key, bind in self._compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[key] = process

    def parameters(self, values: dict[str, Any]) -> Any:
        # construct_params fills in the statement's own literal values.
        params: dict[str, Any] = dict(self._compiled.construct_params(values))
        for key, process in self._processors.items():
            if key in params and params[key] is not None:
                params[key] = process(params[key])
        return params if self._order is None else tuple(params[k] for k in self._order)

    def execute(self, conn: Connection, values: dict[str, Any]) -> int:
        """Run it once in the connection's transaction: the number of rows it touched."""
        return int(self._run(conn, lambda cur: (cur.execute(self.sql, self.parameters(values)), cur.rowcount)[1]))

    def first(self, conn: Connection, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """Run a query once in the connection's transaction: its first row."""
        def fetch(cur: Any) -> tuple[Any, ...] | None:
            cur.execute(self.sql, self.parameters(values))
            row = cur.fetchone()
            return tuple(row) if row is not None else None
        return self._run(conn, fetch)

    def executemany(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        self._run(conn, lambda cur: cur.executemany(self.sql, [self.parameters(r) for r in rows]))

    def _run(self, conn: Connection, work: Any) -> Any:
        """The DBAPI's errors become SQLAlchemy's (IntegrityError stays IntegrityError), and a lost connection
        is invalidated as SQLAlchemy would, so callers handle both as for any other statement."""
        dbapi_conn = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()  # type: ignore[union-attr]
        try:
            return work(cursor)
        except conn.dialect.loaded_dbapi.Error as exc:
            lost = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
            wrapped = sa.exc.DBAPIError.instance(self.sql, None, exc, conn.dialect.loaded_dbapi.Error,
                                                 connection_invalidated=lost, dialect=conn.dialect)
            if lost:
                conn.invalidate(wrapped)
            raise wrapped from exc
        finally:
            cursor.close()


_COMPILED: dict[tuple[int, str], tuple[sa.sql.ClauseElement, Compiled]] = {}


def compiled(stmt: sa.sql.ClauseElement, conn: Connection) -> Compiled:
    """The statement compiled for the connection's dialect (once per statement object and dialect)."""
    key = (id(stmt), conn.dialect.name)
    hit = _COMPILED.get(key)
    if hit is None or hit[0] is not stmt:
        hit = _COMPILED[key] = (stmt, Compiled(stmt, conn.dialect))  # the statement is kept alive with it
    return hit[1]


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only connection (on SQLite a deferred transaction: a snapshot that does not queue with writers)."""
    with engine.connect() as conn:
        conn.execution_options(kroniker_read=True)
        yield conn


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (one Alembic history for the whole project)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
