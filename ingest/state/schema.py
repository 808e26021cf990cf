"""The state tables, as SQLAlchemy Core metadata (the migrations in ``migrations/`` create them;
this module is what the code reads and writes through)."""
from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKeyConstraint, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

DEFAULT_KB = "default"  # the knowledge base a single-knowledge-base data directory is
KB_ID_LENGTH = 64

# The registry of every knowledge base: ``kb`` (its id) is part of each key, since one file or one
# content hash may be indexed in two knowledge bases.
documents = Table(
    "documents",
    metadata,
    Column("kb", String(KB_ID_LENGTH), primary_key=True),
    Column("source", Text, primary_key=True),
    Column("doc_id", Text, nullable=False),
    Column("file_type", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("chunk_count", Integer, nullable=False),
    Column("indexed_at", Float, nullable=False),
    # ingest.types.INDEX_FORMAT when indexed: an older one is indexed again though its bytes are the same.
    Column("index_format", Integer, nullable=False, server_default="1"),
    Index("documents_doc_id", "kb", "doc_id"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("kb", String(KB_ID_LENGTH), primary_key=True),
    Column("chunk_id", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("ordinal", Integer, nullable=False),
    ForeignKeyConstraint(["kb", "source"], ["documents.kb", "documents.source"], ondelete="CASCADE"),
    Index("chunks_source", "kb", "source"),
)

# Sources re-pointed by a rename whose Milvus rows may still name the old source in ``meta``:
# written in the rename's transaction, cleared once Milvus is rewritten (``Indexer.check`` finishes it).
stale_meta = Table(
    "stale_meta",
    metadata,
    Column("kb", String(KB_ID_LENGTH), primary_key=True),
    Column("source", Text, primary_key=True),
    ForeignKeyConstraint(["kb", "source"], ["documents.kb", "documents.source"], ondelete="CASCADE"),
)

# A named exclusive right (a folder sync) held by one process until ``expires_at`` (unix seconds);
# its holder renews it while working, so a holder that dies loses it within one time-to-live.
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# The last scheduled tick claimed per schedule: a tick runs on the one replica that claims it.
ticks = Table(
    "ticks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("last_tick", Float, nullable=False),
    Column("holder", String(200), nullable=False),
)

# Small named values (JSON text) kept with the index and shared by every replica: the calibration.
kb_values = Table(
    "kb_values",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Background jobs of every replica: what a front end shows, and a lease (``lease_until``) its replica
# renews while the job is queued or running, so a job whose replica died reads as interrupted.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("stage", Text, nullable=False, server_default=""),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("detail", Text, nullable=False, server_default=""),
    Column("error", Text, nullable=False, server_default=""),
    Column("files", Text, nullable=False, server_default="[]"),  # JSON list of FileResult dicts
    Column("holder", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_until", Float, nullable=False),
    Column("kb", String(KB_ID_LENGTH), nullable=False, server_default=DEFAULT_KB),
    Index("jobs_created_at", "created_at"),
)
