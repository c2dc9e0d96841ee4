"""Documents found by their event codes (ITI-67 `event`, e.g. a care package's code) by index: each event code row
carries its document's patient, so a search reads only that patient's rows of that code (index on patient, code,
system) instead of every document with the code.

Existing rows take the patient from their document (a document's patient never changes: migration 0003).

Revision ID: 0004_event_search
Revises: 0003_audit_keyed
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_event_search"
down_revision = "0003_audit_keyed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("document_events", sa.Column("patient_cpr", sa.String(10)))
    op.execute(sa.text("UPDATE document_events SET patient_cpr = (SELECT documents.patient_cpr FROM documents "
                       "WHERE documents.id = document_events.document_id)"))
    with op.batch_alter_table("document_events") as batch:
        batch.alter_column("patient_cpr", existing_type=sa.String(10), nullable=False)
    op.create_index("ix_document_events_patient_code", "document_events", ["patient_cpr", "code", "system"])


def downgrade() -> None:
    op.drop_index("ix_document_events_patient_code", table_name="document_events")
    with op.batch_alter_table("document_events") as batch:
        batch.drop_column("patient_cpr")
