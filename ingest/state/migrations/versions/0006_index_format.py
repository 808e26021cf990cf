"""Each registered document records the format it was indexed in (``ingest.types.INDEX_FORMAT``):
a document indexed in an older format is indexed again by the next sync, upload or re-index of its
file, even though its bytes did not change. Existing rows are format 1 (text alone; format 2 adds
the heading path to what is embedded and keyword-indexed).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("index_format", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("index_format")
