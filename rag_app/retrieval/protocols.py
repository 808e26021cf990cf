"""What the retrieval stages need from the outside world, as ``typing.Protocol`` s.

The stages are written against these, not against Milvus, the BM25 index or the e5 model, so a
test (or another store) can stand in with a few lines of numpy and dicts: see ``tests/support/fakes.py``
and ``tests/rag_app/retrieval/test_retrieval_stages.py``. ``MilvusVectorStore``, ``BM25Index`` (and
``MilvusKeywordIndex``, keyword search by Milvus itself), ``BM25Tokenizer``, ``Embedder`` and
``CrossEncoderReranker`` satisfy them as they are.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ingest.types import Chunk

if TYPE_CHECKING:
    from ingest.embedding import TextEmbedder
    from ingest.stores.bm25_index import BM25Index
    from ingest.stores.protocols import SearchableVectorStore
    from ingest.text_tokenizer import BM25Tokenizer
    from rag_app.config import Settings
    from rag_app.retrieval.pipeline import HybridRetriever


@runtime_checkable
class QueryEmbedder(Protocol):
    """Turns text into vectors in the corpus's space. ``embed_documents`` is only used for the
    threshold's reference passages (they are passages, so they get the passage prefix)."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class VectorStore(Protocol):
    """Chunk vectors searchable by similarity."""

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """Per query vector, up to ``k`` (chunk, similarity) pairs, best first."""
        ...

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """The stored chunk and vector of each id that exists."""
        ...

    def sample_vectors(self, n: int) -> np.ndarray:
        """Up to ``n`` stored vectors spread over the corpus (an ``(m, dim)`` array, m <= n)."""
        ...


@runtime_checkable
class KeywordIndex(Protocol):
    """A lexical (BM25) index over chunk ids."""

    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Up to ``k`` (chunk_id, score) pairs, best first."""
        ...

    def get_scores(self, query_tokens: Sequence[str], chunk_ids: Sequence[str]) -> np.ndarray:
        """The score of each of ``chunk_ids`` (0 for ids the index lacks)."""
        ...

    def max_score(self, query_tokens: Sequence[str]) -> float:
        """An upper bound of any chunk's score for the query (tokens the index lacks count too)."""
        ...

    def score_tokens(self, query_tokens: Sequence[str], doc_tokens: Sequence[str]) -> float:
        """The score a document of these tokens would get, without indexing it."""
        ...

    def __len__(self) -> int:
        """Chunks indexed: the corpus size (0 means an empty knowledge base)."""
        ...


@runtime_checkable
class KeywordStore(KeywordIndex, Protocol):
    """A knowledge base's keyword index as its owner, evaluation and tuning read it: the retriever's
    reads plus every chunk id it holds. ``BM25Index`` (``bm25.backend: local``) and
    ``ingest.stores.milvus_keyword.MilvusKeywordIndex`` (``bm25.backend: milvus``) are ones."""

    def ids(self) -> set[str]:
        """Every chunk id indexed."""
        ...


@runtime_checkable
class Tokenizer(Protocol):
    """The keyword index's tokenizer: queries must be cut the way documents were."""

    def tokenize(self, text: str) -> list[str]: ...


@runtime_checkable
class PassageScorer(Protocol):
    """A cross-encoder: relevance of each passage to the query, or None when out of time."""

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray | None: ...


class SearchableKnowledgeBase(Protocol):
    """The parts of a knowledge base that evaluation and tuning read (``rag_app.service.KnowledgeBase``
    is one): its settings, its embedder and stores, and the retriever over them, after ``warm_up``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def embedder(self) -> TextEmbedder: ...

    @property
    def vectors(self) -> SearchableVectorStore | None: ...

    @property
    def bm25(self) -> BM25Index | None:
        """The in-process BM25 index; None with ``bm25.backend: milvus`` (read ``keyword_index``)."""
        ...

    @property
    def keyword_index(self) -> KeywordStore | None:
        """What keyword search reads, whichever the backend."""
        ...

    @property
    def tokenizer(self) -> BM25Tokenizer: ...

    @property
    def retriever(self) -> HybridRetriever | None: ...

    def warm_up(self) -> object: ...
