"""Old home of the cross-encoder reranker: it now lives in :mod:`rag_app.retrieval.rerank` with
its pipeline stage. Kept so ``from rag_app.retrieval.reranker import CrossEncoderReranker`` works."""
from __future__ import annotations

from .rerank import CrossEncoderReranker, Rerank, rerank_order

__all__ = ["CrossEncoderReranker", "Rerank", "rerank_order"]
