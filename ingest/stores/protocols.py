"""What ingestion and a knowledge base need from a chunk vector store, as ``typing.Protocol`` s.

:class:`~ingest.stores.milvus_store.MilvusVectorStore` satisfies both as it is; a test passes an
in-memory store (``tests/support/fakes.py``) to the constructors that take one instead.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ingest.types import Chunk


@runtime_checkable
class WritableVectorStore(Protocol):
    """What :class:`~ingest.indexer.Indexer` writes to, and reads back to check the stores agree."""

    def upsert(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, keywords: Sequence[Sequence[str]] | None = None
    ) -> None:
        """Insert or replace one row per chunk (``vectors``: ``[len(chunks), dim]``). ``keywords``: each
        chunk's BM25 tokens, given only to a store that indexes them itself (Milvus full-text search)."""
        ...

    def set_source(self, chunk_ids: Sequence[str], source: str) -> int:
        """Rewrite these rows' source (a rename) keeping vectors and text; returns the rows rewritten."""
        ...

    def delete(self, chunk_ids: Iterable[str]) -> int:
        """Remove these rows (missing ids are ignored); returns the ids asked to delete."""
        ...

    def flush(self) -> None:
        """Make the writes so far durable and visible to counts."""
        ...

    def count(self) -> int:
        """Rows stored."""
        ...

    def all_ids(self) -> set[str]:
        """Every stored chunk id."""
        ...

    def get_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """The stored text of each id that exists."""
        ...

    def get_indexed_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """What each id that exists was indexed with (``Chunk.indexed_text``: heading path, then text)."""
        ...


@runtime_checkable
class SearchableVectorStore(WritableVectorStore, Protocol):
    """The whole store a knowledge base opens: the indexer's writes, the retriever's reads
    (``rag_app.retrieval.protocols.VectorStore``) and a lifecycle."""

    def warm_up(self) -> None:
        """Open the store (create the collection if needed). Idempotent."""
        ...

    def close(self) -> None:
        """Release the store; ``warm_up`` opens it again."""
        ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """Per query vector, up to ``k`` (chunk, similarity) pairs, best first."""
        ...

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """The stored chunk and vector of each id that exists."""
        ...

    def sample_vectors(self, n: int) -> np.ndarray:
        """Up to ``n`` stored vectors spread over the collection (an ``(m, dim)`` array, m <= n)."""
        ...
