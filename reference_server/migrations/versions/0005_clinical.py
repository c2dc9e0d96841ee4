"""Questionnaire responses, their score Observations and triage ClinicalImpressions (issue 12): one table, the
resources as served, by patient and type.

Revision ID: 0005_clinical
Revises: 0004_event_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_clinical"
down_revision = "0004_event_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clinical_resources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("patient_cpr", sa.String(10), nullable=False),
        sa.Column("questionnaire", sa.String(300)),
        sa.Column("derived_from", sa.String(64)),
        sa.Column("submitter", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index("ix_clinical_resources_patient_type_created", "clinical_resources",
                    ["patient_cpr", "resource_type", "created"])


def downgrade() -> None:
    op.drop_index("ix_clinical_resources_patient_type_created", table_name="clinical_resources")
    op.drop_table("clinical_resources")
