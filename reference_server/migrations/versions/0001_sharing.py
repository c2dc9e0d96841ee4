"""The reference server's tables: documents and their events, treatment relations, blocks, the audit log.

Revision ID: 0001_sharing
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_sharing"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("master_identifier", sa.String(200), nullable=False, unique=True),
        sa.Column("content_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
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
        sa.Column("doc_date", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("replaces", sa.String(64), sa.ForeignKey("documents.id")),
        sa.Column("status_reason", sa.Text),
        sa.Column("submitter_sor", sa.String(20)),
        sa.Column("docref", sa.Text, nullable=False),
    )
    op.create_index("ix_documents_patient_status_created", "documents", ["patient_cpr", "status", "created"])
    op.create_index("ix_documents_patient_type", "documents", ["patient_cpr", "type_code"])
    op.create_table(
        "document_events",
        sa.Column("document_id", sa.String(64), sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("system", sa.String(200)),
        sa.Column("code", sa.String(64), nullable=False),
    )
    op.create_index("ix_document_events_code", "document_events", ["code", "document_id"])
    op.create_table(
        "treatment_relations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_cpr", sa.String(10), nullable=False, index=True),
        sa.Column("clinician_auth_id", sa.String(20)),
        sa.Column("org_sor", sa.String(20)),
        sa.Column("evidence", sa.String(40), nullable=False),
        sa.Column("start", sa.DateTime, nullable=False),
        sa.Column("end", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "blocks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_cpr", sa.String(10), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("clinician_auth_id", sa.String(20)),
        sa.Column("org_sor", sa.String(20)),
        sa.Column("period_start", sa.DateTime),
        sa.Column("period_end", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("lifted", sa.DateTime),
        sa.Column("lifted_by", sa.String(100)),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded", sa.DateTime, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("actor_name", sa.String(200)),
        sa.Column("org_sor", sa.String(20)),
        sa.Column("org_name", sa.String(200)),
        sa.Column("patient_cpr", sa.String(10), index=True),
        sa.Column("documents", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(40)),
        sa.Column("reason", sa.Text),
        sa.Column("override", sa.Boolean, nullable=False),
        sa.Column("override_reason", sa.String(40)),
        sa.Column("minlog", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')"))


def downgrade() -> None:
    for table in ("audit_head", "audit_events", "blocks", "treatment_relations", "document_events", "documents"):
        op.drop_table(table)
