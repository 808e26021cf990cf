"""Several knowledge bases in one state database: the registry tables and the jobs gain a ``kb``
column (the knowledge base's id), part of the registry's keys, since one file or one content hash
may be indexed in two knowledge bases. Existing rows belong to ``default``, the knowledge base an
existing data directory opens as.

The registry tables are rebuilt (copied out, re-created with the new keys, copied back): SQLite
cannot change a primary key in place, and PostgreSQL's constraint names would clash with a renamed
old table's.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_KB = "default"


def upgrade() -> None:
    for table in ("documents", "chunks", "stale_meta"):
        op.execute(f"CREATE TABLE old_{table} AS SELECT * FROM {table}")
    op.drop_table("stale_meta")
    op.drop_table("chunks")
    op.drop_table("documents")
    op.create_table(
        "documents",
        sa.Column("kb", sa.String(64), primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("doc_id", sa.Text, nullable=False),
        sa.Column("file_type", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=False),
    )
    op.create_index("documents_doc_id", "documents", ["kb", "doc_id"])
    op.create_table(
        "chunks",
        sa.Column("kb", sa.String(64), primary_key=True),
        sa.Column("chunk_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(["kb", "source"], ["documents.kb", "documents.source"], ondelete="CASCADE"),
    )
    op.create_index("chunks_source", "chunks", ["kb", "source"])
    op.create_table(
        "stale_meta",
        sa.Column("kb", sa.String(64), primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.ForeignKeyConstraint(["kb", "source"], ["documents.kb", "documents.source"], ondelete="CASCADE"),
    )
    op.execute(
        "INSERT INTO documents (kb, source, doc_id, file_type, title, chunk_count, indexed_at) "
        f"SELECT '{DEFAULT_KB}', source, doc_id, file_type, title, chunk_count, indexed_at FROM old_documents"
    )
    op.execute(
        f"INSERT INTO chunks (kb, chunk_id, source, ordinal) SELECT '{DEFAULT_KB}', chunk_id, source, ordinal"
        " FROM old_chunks"
    )
    op.execute(f"INSERT INTO stale_meta (kb, source) SELECT '{DEFAULT_KB}', source FROM old_stale_meta")
    for table in ("stale_meta", "chunks", "documents"):
        op.execute(f"DROP TABLE old_{table}")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kb", sa.String(64), nullable=False, server_default=DEFAULT_KB))


def downgrade() -> None:
    raise NotImplementedError("the registry of several knowledge bases cannot be folded back into one")
