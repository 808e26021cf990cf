"""A data directory of the single-knowledge-base layout (registry schema 0004, before knowledge bases)
opens as the ``default`` knowledge base of a workspace: migrated in place, nothing re-indexed."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.state.schema import DEFAULT_KB
from rag_app.service.access import LOCAL
from rag_app.service.workspace import Workspace
from tests.support.old_layouts import REGISTRY_SCHEMA_0001
from tests.support.paths import SAMPLES


def _to_schema_0004(path: Path) -> None:
    """Rewrite a registry made by this version as the previous one left it (same rows, no ``kb``)."""
    with sqlite3.connect(path) as conn:
        documents = conn.execute("SELECT source, doc_id, file_type, title, chunk_count, indexed_at FROM documents").fetchall()
        chunks = conn.execute("SELECT chunk_id, source, ordinal FROM chunks").fetchall()
        conn.executescript("DROP TABLE stale_meta; DROP TABLE chunks; DROP TABLE documents;" + REGISTRY_SCHEMA_0001)
        conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)", documents)
        conn.executemany("INSERT INTO chunks VALUES (?, ?, ?)", chunks)
        conn.execute("ALTER TABLE jobs DROP COLUMN kb")
        conn.execute("UPDATE alembic_version SET version_num = '0004'")


def test_an_existing_data_directory_opens_as_the_default_knowledge_base(make_kb, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = make_kb(data)
    kb.indexer.ingest_paths([SAMPLES / "employee_handbook_zh.md", SAMPLES / "release_notes_en.pdf"])
    before = {d.source: d.indexed_at for d in kb.registry.documents()}
    chunks = kb.vectors.count()
    kb.close()
    _to_schema_0004(data / "registry.sqlite3")

    workspace = Workspace.open(kb.settings, background=False)
    try:
        assert [(r.id, role) for r, role in workspace.knowledge_bases(LOCAL)] == [(DEFAULT_KB, "owner")]
        listed = workspace.documents(LOCAL, DEFAULT_KB)
        assert {d["source"]: d["indexed_at"] for d in listed} == before  # the same rows, not re-indexed
        service = workspace.service(DEFAULT_KB)
        registry, vectors, keywords = service.kb.stores()
        assert vectors.count() == chunks == registry.chunk_count() == len(keywords.ids())
        found = workspace.search(LOCAL, DEFAULT_KB, "入职满五年的正式员工每年有几天带薪年假？").result
        assert found.chunks and found.chunks[0].source.endswith("employee_handbook_zh.md")
        assert not workspace.accounts_enabled and workspace.anonymous() == LOCAL
    finally:
        workspace.close()
