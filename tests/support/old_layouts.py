"""Data layouts of earlier versions, for the tests that open them in place."""

# The registry's tables before knowledge bases (revisions 0001 to 0004 kept them as the SQLite
# registry made them before it moved behind SQLAlchemy, ingest/registry.py, session 27).
REGISTRY_SCHEMA_0001 = """
CREATE TABLE documents (source TEXT PRIMARY KEY, doc_id TEXT NOT NULL, file_type TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '', chunk_count INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE INDEX documents_doc_id ON documents(doc_id);
CREATE TABLE chunks (chunk_id TEXT PRIMARY KEY,
    source TEXT NOT NULL REFERENCES documents(source) ON DELETE CASCADE, ordinal INTEGER NOT NULL);
CREATE INDEX chunks_source ON chunks(source);
CREATE TABLE stale_meta (source TEXT PRIMARY KEY REFERENCES documents(source) ON DELETE CASCADE);
"""
