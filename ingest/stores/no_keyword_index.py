"""No keyword search (``bm25.backend: none``): dense retrieval alone, for a Milvus server without
full-text search (before 2.5, e.g. PyPI's ``milvus`` 2.3.5) shared by replicas, where a per-replica
BM25 index would make replicas answer differently. It answers the keyword reads with nothing and
counts the corpus from the vector store."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.stores.protocols import WritableVectorStore


class NoKeywordIndex:
    def __init__(self, vectors: WritableVectorStore) -> None:
        self.vectors = vectors

    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[str, float]]:
        return []

    def get_scores(self, query_tokens: Sequence[str], chunk_ids: Sequence[str]) -> np.ndarray:
        return np.zeros(len(chunk_ids), np.float64)

    def max_score(self, query_tokens: Sequence[str]) -> float:
        return 0.0

    def score_tokens(self, query_tokens: Sequence[str], doc_tokens: Sequence[str]) -> float:
        return 0.0

    def __len__(self) -> int:
        """Chunks in the vector store: the corpus size."""
        return self.vectors.count()

    def ids(self) -> set[str]:
        return self.vectors.all_ids()
