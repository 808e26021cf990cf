"""The document registry: documents, their chunks, renames awaiting a Milvus rewrite.

The same tables the SQLite registry created before migrations existed, so such a file is stamped
with this revision instead of being re-created.

Revision ID: 0001
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("doc_id", sa.Text, nullable=False),
        sa.Column("file_type", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=False),
    )
    op.create_index("documents_doc_id", "documents", ["doc_id"])
    op.create_table(
        "chunks",
        sa.Column("chunk_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, sa.ForeignKey("documents.source", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
    )
    op.create_index("chunks_source", "chunks", ["source"])
    op.create_table(
        "stale_meta",
        sa.Column("source", sa.Text, sa.ForeignKey("documents.source", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("stale_meta")
    op.drop_table("chunks")
    op.drop_table("documents")
