"""The store's tables (SQLAlchemy Core) and the database engine: SQLite by default, PostgreSQL by URL.

One Alembic migration history for the whole project lives in `migrations/`; the DPIA register adds its
tables to it. The tables here are the schema's single description; migrations create them.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
    sa.Index("ix_documents_patient_status_created", "patient_cpr", "status", "created"),
    sa.Index("ix_documents_patient_type", "patient_cpr", "type_code"),
)

document_events = sa.Table(
    "document_events", metadata,
    sa.Column("document_id", sa.String(64), sa.ForeignKey("documents.id"), nullable=False),
    sa.Column("system", sa.String(200)),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Index("ix_document_events_code", "code", "document_id"),
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
    sa.Column("patient_cpr", sa.String(10), index=True),
    sa.Column("documents", sa.Text, nullable=False),  # JSON list of document ids
    sa.Column("purpose", sa.String(40)),
    sa.Column("reason", sa.Text),
    sa.Column("override", sa.Boolean, nullable=False),
    sa.Column("override_reason", sa.String(40)),
    sa.Column("minlog", sa.Boolean, nullable=False),  # shown in the citizen's MinLog
    sa.Column("detail", sa.Text, nullable=False),  # JSON: query, status, …
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite is set up for durable, concurrent use (WAL, synchronous=FULL)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a crash
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # writers queue here, not fail at commit

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (one Alembic history for the whole project)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
