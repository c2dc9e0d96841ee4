"""Proxies (issue 14): a citizen who reads another's documents, as the parent with custody of a child under 15 or
as the holder of the subject's power of attorney (Digital Fuldmagt), from start until end.

Revision ID: 0007_proxies
Revises: 0006_versions
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_proxies"
down_revision = "0006_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("holder_cpr", sa.String(10), nullable=False),
        sa.Column("subject_cpr", sa.String(10), nullable=False),
        sa.Column("start", sa.DateTime, nullable=False),
        sa.Column("end", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("ended_by", sa.String(100)),
    )
    op.create_index("ix_proxies_holder_cpr", "proxies", ["holder_cpr"])
    op.create_index("ix_proxies_subject_cpr", "proxies", ["subject_cpr"])


def downgrade() -> None:
    op.drop_index("ix_proxies_subject_cpr", table_name="proxies")
    op.drop_index("ix_proxies_holder_cpr", table_name="proxies")
    op.drop_table("proxies")
