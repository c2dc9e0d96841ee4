"""Versions of a DocumentReference (FHIR meta.versionId, vread, _history): a document's bytes never change, but
its status does (current, superseded, entered-in-error). Each status a document has had is a row of
document_versions; documents.version is the newest, documents.updated when it was made.

Existing documents get version 1 with the status they have now (their earlier statuses were not kept).

Revision ID: 0006_versions
Revises: 0005_clinical
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_versions"
down_revision = "0005_clinical"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.add_column("documents", sa.Column("updated", sa.DateTime))
    op.create_table(
        "document_versions",
        sa.Column("document_id", sa.String(64), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("recorded", sa.DateTime, nullable=False),
    )
    op.execute(sa.text("INSERT INTO document_versions (document_id, version, status, status_reason, recorded) "
                       "SELECT id, 1, status, status_reason, created FROM documents"))


def downgrade() -> None:
    op.drop_table("document_versions")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("updated")
        batch.drop_column("version")
