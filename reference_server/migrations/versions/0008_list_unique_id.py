"""MHD Lists (ITI-65): the XDS uniqueId of a SubmissionSet or Folder, unique across the registry. A transaction sent
again is found by its SubmissionSet's uniqueId (and answered as it was the first time); the same uniqueId with other
content is refused (XDSDuplicateUniqueIdInRegistry). Rows stored before have none.

Revision ID: 0008_list_unique_id
Revises: 0007_proxies
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_list_unique_id"
down_revision = "0007_proxies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clinical_resources", sa.Column("unique_id", sa.String(300)))
    op.create_index("ix_clinical_resources_unique_id", "clinical_resources", ["unique_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_clinical_resources_unique_id", table_name="clinical_resources")
    op.drop_column("clinical_resources", "unique_id")
