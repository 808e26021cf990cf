"""The document registry: which source holds which content and which chunk ids, in SQLite.

It is the source of truth for consistency: Milvus and the BM25 index must hold exactly the chunk
ids listed here (``Indexer.check`` compares and repairs).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source      TEXT PRIMARY KEY,
    doc_id      TEXT NOT NULL,
    file_type   TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    chunk_count INTEGER NOT NULL,
    indexed_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_doc_id ON documents(doc_id);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    source   TEXT NOT NULL REFERENCES documents(source) ON DELETE CASCADE,
    ordinal  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
-- Sources re-pointed by a rename whose Milvus rows may still name the old source in ``meta``:
-- written in the rename's transaction, cleared once Milvus is rewritten (check() finishes it).
CREATE TABLE IF NOT EXISTS stale_meta (
    source TEXT PRIMARY KEY REFERENCES documents(source) ON DELETE CASCADE
);
"""


@dataclass(frozen=True)
class DocumentRecord:
    source: str
    doc_id: str
    file_type: str
    title: str
    chunk_count: int
    indexed_at: float


class Registry:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # One connection shared under a lock: the UI's threads and the indexer use the same object.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- reads ----------------------------------------------------------------------------------
    def get(self, source: str) -> DocumentRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE source = ?", (source,)).fetchone()
        return DocumentRecord(*row) if row else None

    def source_of(self, doc_id: str) -> str | None:
        """The first source indexed with this content hash, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT source FROM documents WHERE doc_id = ? ORDER BY indexed_at LIMIT 1", (doc_id,)
            ).fetchone()
        return row[0] if row else None

    def documents(self) -> list[DocumentRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM documents ORDER BY source").fetchall()
        return [DocumentRecord(*r) for r in rows]

    def chunk_ids(self, source: str | None = None) -> set[str]:
        with self._lock:
            if source is None:
                rows = self._db.execute("SELECT chunk_id FROM chunks").fetchall()
            else:
                rows = self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (source,)).fetchall()
        return {r[0] for r in rows}

    def chunk_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def ordered_chunk_ids(self, source: str) -> list[str]:
        """The source's chunk ids in document order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT chunk_id FROM chunks WHERE source = ? ORDER BY ordinal", (source,)
            ).fetchall()
        return [r[0] for r in rows]

    def stale_meta_sources(self) -> list[str]:
        """Renamed sources whose Milvus rows have not been rewritten with the new name yet."""
        with self._lock:
            rows = self._db.execute("SELECT source FROM stale_meta ORDER BY source").fetchall()
        return [r[0] for r in rows]

    # --- writes (each one transaction) ---------------------------------------------------------------
    def put(
        self, source: str, doc_id: str, file_type: str, title: str, chunk_ids: Sequence[str]
    ) -> set[str]:
        """Record ``source`` as holding these chunks; returns the chunk ids it held before and no
        longer holds (the caller deletes them from the stores)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = {
                    r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (source,))
                }
                self._db.execute("DELETE FROM chunks WHERE source = ?", (source,))
                self._db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                    (source, doc_id, file_type, title, len(chunk_ids), time.time()),
                )
                self._db.executemany(
                    "INSERT INTO chunks VALUES (?, ?, ?)",
                    [(cid, source, i) for i, cid in enumerate(chunk_ids)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return old - set(chunk_ids)

    def rename(self, old: str, new: str, title: str | None = None) -> set[str]:
        """Re-point ``old``'s document and chunks to ``new`` in one transaction and mark ``new``
        as having stale Milvus metadata; returns the chunk ids (unchanged: they hash content).

        Raises ``KeyError`` if ``old`` is unknown and ``ValueError`` if ``new`` is taken."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT * FROM documents WHERE source = ?", (old,)).fetchone()
                if row is None:
                    raise KeyError(old)
                if self._db.execute("SELECT 1 FROM documents WHERE source = ?", (new,)).fetchone():
                    raise ValueError(f"{new} is already registered")
                record = DocumentRecord(*row)
                # New row first so the chunks' foreign key always points at an existing document.
                self._db.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                    (new, record.doc_id, record.file_type, record.title if title is None else title,
                     record.chunk_count, record.indexed_at),
                )
                self._db.execute("UPDATE chunks SET source = ? WHERE source = ?", (new, old))
                self._db.execute("DELETE FROM documents WHERE source = ?", (old,))
                self._db.execute("INSERT OR REPLACE INTO stale_meta VALUES (?)", (new,))
                ids = {
                    r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (new,))
                }
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def clear_stale_meta(self, sources: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM stale_meta WHERE source = ?", [(s,) for s in sources])

    def remove(self, sources: Iterable[str]) -> set[str]:
        """Forget these sources; returns their chunk ids."""
        removed: set[str] = set()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for source in sources:
                    removed.update(
                        r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE source = ?", (source,))
                    )
                    self._db.execute("DELETE FROM documents WHERE source = ?", (source,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return removed
