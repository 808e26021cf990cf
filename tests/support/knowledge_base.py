"""Knowledge bases over the real components (e5, Milvus Lite, BM25, registry) for integration tests,
and the check that a knowledge base's three stores agree (real or in-memory ones)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest.settings import EmbedderSettings

if TYPE_CHECKING:
    from ingest.embedding import Embedder
    from rag_app.service import KnowledgeBase


def build_kb(data_dir: Path, e5_model_dir: Path, e5_embedder: Embedder, **overrides: object) -> KnowledgeBase:
    """A warmed KnowledgeBase on ``data_dir`` (real Milvus Lite, BM25, registry) that shares the
    session's loaded embedder, so tests do not reload the model."""
    from rag_app.config import Settings
    from rag_app.service import KnowledgeBase

    settings = Settings(
        data_dir=data_dir, embedder=EmbedderSettings(cache_dir=str(e5_model_dir.parent)), **overrides
    )
    return KnowledgeBase(settings, embedder=e5_embedder).warm_up()


def assert_stores_agree(kb: KnowledgeBase) -> set[str]:
    """The registry, the vector store and BM25 hold the same chunk ids, and count them alike."""
    registry, vectors, bm25 = kb.stores()
    reg, vec, bm = registry.chunk_ids(), vectors.all_ids(), bm25.ids()
    assert reg == vec == bm
    assert vectors.count() == len(bm25) == registry.chunk_count() == len(reg)
    return reg
