"""Wires one knowledge base from one ``Settings`` object: embedder, stores, indexer and retriever."""
from __future__ import annotations

import logging
import threading

from ingest.chunking import Chunker
from ingest.embedding import Embedder, TextEmbedder
from ingest.indexer import Indexer
from ingest.loaders import DocumentLoader
from ingest.registry import Registry
from ingest.stores.bm25_index import BM25Index
from ingest.stores.milvus_store import MilvusVectorStore
from ingest.stores.protocols import SearchableVectorStore
from ingest.text_tokenizer import BM25Tokenizer
from rag_app.config import Settings
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.retrieval.pipeline import HybridRetriever
from rag_app.retrieval.rerank import CrossEncoderReranker

from .model_store import apply_active

log = logging.getLogger(__name__)


class KnowledgeBase:
    """Light to construct; ``warm_up()`` loads the embedder and opens the stores."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: TextEmbedder | None = None,
        vectors: SearchableVectorStore | None = None,
    ) -> None:
        """``embedder``: an already loaded one to share (tests, several knowledge bases in one process),
        or any other ``TextEmbedder`` (a test's in-memory one). ``vectors``: a vector store to use
        instead of opening Milvus at ``settings.milvus_uri`` (a test's in-memory one); its ``warm_up``
        is still called, and the knowledge base closes it with itself."""
        self.configured = settings  # as given; ``settings`` adds the reranker rag-tune switched on
        self.settings = apply_active(settings)
        self._warm = False
        self._lock = threading.Lock()
        self.embedder: TextEmbedder = (
            embedder if embedder is not None else Embedder(settings.embedder, data_dir=settings.data_dir)
        )
        self._given_vectors = vectors
        self.tokenizer = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords)
        self.registry: Registry | None = None
        self.vectors: SearchableVectorStore | None = None
        self.bm25: BM25Index | None = None
        self.indexer: Indexer | None = None
        self.retriever: HybridRetriever | None = None

    def warm_up(self) -> KnowledgeBase:
        with self._lock:
            if self._warm:
                return self
            s = self.settings
            s.data_dir.mkdir(parents=True, exist_ok=True)
            # Milvus before the model: the dimension needs only the model's config, and an
            # unreachable server should fail in seconds, not after the model has loaded.
            vectors = self._given_vectors
            if vectors is None:
                vectors = MilvusVectorStore(s.milvus, s.milvus_uri, self.embedder.dim)
            vectors.warm_up()
            self.vectors = vectors
            self.embedder.warm_up()
            self.registry = Registry(s.registry_path)
            self.bm25 = BM25Index(s.bm25_dir, k1=s.bm25.k1, b=s.bm25.b, epsilon=s.bm25.epsilon)
            chunker = Chunker(s.chunker, self.embedder)
            self.indexer = Indexer(
                self.embedder,
                chunker,
                self.vectors,
                self.bm25,
                self.tokenizer,
                self.registry,
                sync_lock_path=s.sync_lock_path,
                load=DocumentLoader(s.loaders),
            )
            reranker = CrossEncoderReranker(s.retrieval.reranker) if s.retrieval.reranker.enabled else None
            self.retriever = HybridRetriever(
                s.retrieval,
                self.embedder,
                self.vectors,
                self.bm25,
                self.tokenizer,
                reranker,
                reference_cache_dir=s.embedder_cache_dir / "calibration",
                # This knowledge base's own cutoff and fusion, if calibrated (service.calibration).
                kb_calibration=KnowledgeBaseCalibration.load(s.calibration_path),
            )
            self.retriever.warm_up()
            self._warm = True
            log.info("knowledge base ready: %s, Milvus at %s", s.embedder.model, s.milvus_uri)
            return self

    def stores(self) -> tuple[Registry, SearchableVectorStore, BM25Index]:
        """The registry, vector (Milvus) and BM25 stores of a warmed knowledge base."""
        if self.registry is None or self.vectors is None or self.bm25 is None:
            raise RuntimeError("the knowledge base is not warmed up (KnowledgeBase.warm_up)")
        return self.registry, self.vectors, self.bm25

    def ready_indexer(self) -> Indexer:
        if self.indexer is None:
            raise RuntimeError("the knowledge base is not warmed up (KnowledgeBase.warm_up)")
        return self.indexer

    def ready_retriever(self) -> HybridRetriever:
        if self.retriever is None:
            raise RuntimeError("the knowledge base is not warmed up (KnowledgeBase.warm_up)")
        return self.retriever

    def reload_reranker(self) -> None:
        """Pick up the tuned reranker switched on (or rolled back) since start-up."""
        settings = apply_active(self.configured)
        reranker = CrossEncoderReranker(settings.retrieval.reranker) if settings.retrieval.reranker.enabled else None
        if reranker is not None:
            reranker.warm_up()  # load before the switch: no question waits for it
        self.settings = settings
        if self.retriever is not None:
            self.retriever.settings = settings.retrieval
            self.retriever.reranker = reranker
        log.info("reranker now: %s", settings.retrieval.reranker.model if reranker else "none")

    def close(self) -> None:
        with self._lock:
            if self.bm25 is not None:
                self.bm25.save()
            if self.vectors is not None:
                self.vectors.close()
            if self.registry is not None:
                self.registry.close()
            self._warm = False
