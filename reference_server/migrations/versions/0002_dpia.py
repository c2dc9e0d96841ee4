"""The DPIA register's tables: registers, their immutable revisions, and sign-offs bound to a revision's hash.

The tables are described in kroniker/dpia/store.py; this migration creates them (tests compare the two).

Revision ID: 0002_dpia
Revises: 0001_sharing
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_dpia"
down_revision = "0001_sharing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dpia_registers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("template_id", sa.String(100), sa.ForeignKey("dpia_registers.id")),
        sa.Column("clinic_sor", sa.String(20)),
        sa.Column("head", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("retired", sa.DateTime),
        sa.Column("retired_by", sa.String(200)),
        sa.Column("retired_reason", sa.Text),
    )
    op.create_index("ix_dpia_registers_template", "dpia_registers", ["template_id"])
    op.create_table(
        "dpia_revisions",
        sa.Column("register_id", sa.String(100), sa.ForeignKey("dpia_registers.id"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(71), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("template_number", sa.Integer),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_dpia_revisions_hash", "dpia_revisions", ["hash"])
    op.create_table(
        "dpia_sign_offs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("register_id", sa.String(100), sa.ForeignKey("dpia_registers.id"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(71), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(40), nullable=False),
        sa.Column("statement", sa.Text),
        sa.Column("despite_errors", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_index("ix_dpia_sign_offs_register", "dpia_sign_offs", ["register_id", "revision"])


def downgrade() -> None:
    for table in ("dpia_sign_offs", "dpia_revisions", "dpia_registers"):
        op.drop_table(table)
