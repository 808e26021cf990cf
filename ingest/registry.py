"""The document registry: which source holds which content and which chunk ids.

It is the source of truth for consistency: Milvus and the BM25 index must hold exactly the chunk
ids listed here (``Indexer.check`` compares and repairs). It lives in the state database
(``ingest.state``): an SQLite file by default, PostgreSQL when replicas share it.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update

from ingest.state.database import StateDatabase
from ingest.state.schema import DEFAULT_KB, chunks, documents, stale_meta
from ingest.types import INDEX_FORMAT

_BATCH = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class DocumentRecord:
    source: str
    doc_id: str
    file_type: str
    title: str
    chunk_count: int
    indexed_at: float
    index_format: int = INDEX_FORMAT  # ingest.types.INDEX_FORMAT when it was indexed


_DOCUMENT_COLUMNS = [c for c in documents.c if c.name != "kb"]


def _record(row: object) -> DocumentRecord:
    return DocumentRecord(*row)  # type: ignore[misc]  # a Row of _DOCUMENT_COLUMNS, in order


class Registry:
    """Reads and one-transaction writes over one knowledge base's rows of the registry tables.
    ``database``: a :class:`StateDatabase` (shared with the leases and the writers' lock), or the
    path of an SQLite file for one. ``kb``: the knowledge base's id; every read and write is scoped
    to it."""

    def __init__(self, database: StateDatabase | str | Path, kb: str = DEFAULT_KB) -> None:
        self.db = database if isinstance(database, StateDatabase) else StateDatabase.sqlite(database)
        self.kb = kb
        self.db.warm_up()
        self._doc = documents.c.kb == kb
        self._chunk = chunks.c.kb == kb
        self._stale = stale_meta.c.kb == kb

    def scoped_name(self, name: str) -> str:
        """A lease or value name of this knowledge base (the default one keeps the bare name)."""
        return name if self.kb == DEFAULT_KB else f"{name}:{self.kb}"

    def close(self) -> None:
        self.db.close()

    # --- reads ----------------------------------------------------------------------------------
    def get(self, source: str) -> DocumentRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(*_DOCUMENT_COLUMNS).where(self._doc, documents.c.source == source)
            ).one_or_none()
        return _record(row) if row else None

    def source_of(self, doc_id: str) -> str | None:
        """The first source indexed with this content hash, if any."""
        with self.db.read() as conn:
            return conn.execute(
                select(documents.c.source).where(self._doc, documents.c.doc_id == doc_id)
                .order_by(documents.c.indexed_at).limit(1)
            ).scalar_one_or_none()

    def documents(self) -> list[DocumentRecord]:
        with self.db.read() as conn:
            rows = conn.execute(select(*_DOCUMENT_COLUMNS).where(self._doc).order_by(documents.c.source)).all()
        return [_record(r) for r in rows]

    def chunk_ids(self, source: str | None = None) -> set[str]:
        query = select(chunks.c.chunk_id).where(self._chunk)
        if source is not None:
            query = query.where(chunks.c.source == source)
        with self.db.read() as conn:
            return set(conn.execute(query).scalars())

    def chunk_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(chunks).where(self._chunk)).scalar_one())

    def ordered_chunk_ids(self, source: str) -> list[str]:
        """The source's chunk ids in document order."""
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(chunks.c.chunk_id).where(self._chunk, chunks.c.source == source).order_by(chunks.c.ordinal)
                )
                .scalars()
            )

    def stale_meta_sources(self) -> list[str]:
        """Renamed sources whose Milvus rows have not been rewritten with the new name yet."""
        with self.db.read() as conn:
            query = select(stale_meta.c.source).where(self._stale).order_by(stale_meta.c.source)
            return list(conn.execute(query).scalars())

    # --- writes (each one transaction) ---------------------------------------------------------------
    def put(
        self, source: str, doc_id: str, file_type: str, title: str, chunk_ids: Sequence[str],
        indexed_at: float | None = None, index_format: int = INDEX_FORMAT,
    ) -> set[str]:
        """Record ``source`` as holding these chunks; returns the chunk ids it held before and no
        longer holds (the caller deletes them from the stores). ``indexed_at``: now, unless the
        document keeps an earlier date (a migration); ``index_format``: the current one, unless its
        vectors were copied from another store (a migration)."""
        with self.db.write() as conn:
            mine = (self._chunk, chunks.c.source == source)
            old = set(conn.execute(select(chunks.c.chunk_id).where(*mine)).scalars())
            conn.execute(delete(chunks).where(*mine))
            values = {"doc_id": doc_id, "file_type": file_type, "title": title,
                      "chunk_count": len(chunk_ids), "indexed_at": time.time() if indexed_at is None else indexed_at,
                      "index_format": index_format}
            changed = conn.execute(update(documents).where(self._doc, documents.c.source == source).values(**values))
            if changed.rowcount == 0:
                conn.execute(insert(documents).values(kb=self.kb, source=source, **values))
            if chunk_ids:
                rows = [
                    {"kb": self.kb, "chunk_id": cid, "source": source, "ordinal": i} for i, cid in enumerate(chunk_ids)
                ]
                conn.execute(insert(chunks), rows)
        return old - set(chunk_ids)

    def rename(self, old: str, new: str, title: str | None = None) -> set[str]:
        """Re-point ``old``'s document and chunks to ``new`` in one transaction and mark ``new``
        as having stale Milvus metadata; returns the chunk ids (unchanged: they hash content).

        Raises ``KeyError`` if ``old`` is unknown and ``ValueError`` if ``new`` is taken."""
        with self.db.write() as conn:
            row = conn.execute(select(*_DOCUMENT_COLUMNS).where(self._doc, documents.c.source == old)).one_or_none()
            if row is None:
                raise KeyError(old)
            if conn.execute(select(documents.c.source).where(self._doc, documents.c.source == new)).first():
                raise ValueError(f"{new} is already registered")
            record = _record(row)
            # New row first so the chunks' foreign key always points at an existing document.
            conn.execute(
                insert(documents).values(
                    kb=self.kb, source=new, doc_id=record.doc_id, file_type=record.file_type,
                    title=record.title if title is None else title,
                    chunk_count=record.chunk_count, indexed_at=record.indexed_at, index_format=record.index_format,
                )
            )
            conn.execute(update(chunks).where(self._chunk, chunks.c.source == old).values(source=new))
            conn.execute(delete(documents).where(self._doc, documents.c.source == old))
            conn.execute(delete(stale_meta).where(self._stale, stale_meta.c.source == new))
            conn.execute(insert(stale_meta).values(kb=self.kb, source=new))
            return set(conn.execute(select(chunks.c.chunk_id).where(self._chunk, chunks.c.source == new)).scalars())

    def clear_stale_meta(self, sources: Iterable[str]) -> None:
        sources = list(sources)
        with self.db.write() as conn:
            for i in range(0, len(sources), _BATCH):
                conn.execute(delete(stale_meta).where(self._stale, stale_meta.c.source.in_(sources[i : i + _BATCH])))

    def remove(self, sources: Iterable[str]) -> set[str]:
        """Forget these sources; returns their chunk ids."""
        sources = list(sources)
        removed: set[str] = set()
        with self.db.write() as conn:
            for i in range(0, len(sources), _BATCH):
                part = sources[i : i + _BATCH]
                removed.update(
                    conn.execute(select(chunks.c.chunk_id).where(self._chunk, chunks.c.source.in_(part))).scalars()
                )
                # Chunks and stale marks go with their document (ON DELETE CASCADE); deleted
                # explicitly too, so the result never depends on the connection's pragmas.
                conn.execute(delete(chunks).where(self._chunk, chunks.c.source.in_(part)))
                conn.execute(delete(stale_meta).where(self._stale, stale_meta.c.source.in_(part)))
                conn.execute(delete(documents).where(self._doc, documents.c.source.in_(part)))
        return removed

    def remove_all(self) -> int:
        """Forget every document of this knowledge base (deleting the knowledge base); returns how many."""
        with self.db.write() as conn:
            conn.execute(delete(chunks).where(self._chunk))
            conn.execute(delete(stale_meta).where(self._stale))
            return int(conn.execute(delete(documents).where(self._doc)).rowcount)

