"""The dense leg: the query's embedding and its nearest chunks in the vector store (Milvus)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ingest.types import Chunk

from .protocols import QueryEmbedder, VectorStore


class DenseSearch:
    """Embeds the query and finds the chunks closest to it.

    It also scores chunks it did not return (:meth:`fill`), so a chunk only BM25 found still gets a
    cosine: the threshold calibrates on cosines, and weighted fusion needs both legs' scores. The
    embedder and the store are opened by their owner (the knowledge base): nothing to warm up."""

    def __init__(self, embedder: QueryEmbedder, vectors: VectorStore) -> None:
        self.embedder = embedder
        self.vectors = vectors

    def embed(self, query: str) -> np.ndarray:
        """The query vector (float32). The pipeline needs it even when the dense leg is weighted 0,
        for the calibrated scores and :meth:`fill`."""
        return np.asarray(self.embedder.embed_queries([query])[0], dtype=np.float32)

    def run(self, query_vector: np.ndarray, top_k: int) -> list[tuple[Chunk, float]]:
        """Up to ``top_k`` (chunk, cosine) pairs, best first."""
        return self.vectors.search(query_vector, top_k)[0]

    def fill(self, query_vector: np.ndarray, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, float]]:
        """The stored chunk and its cosine to the query for each id (ids the store lacks are left out)."""
        return {
            cid: (chunk, float(vector @ query_vector)) for cid, (chunk, vector) in self.vectors.fetch(chunk_ids).items()
        }
