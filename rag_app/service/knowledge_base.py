"""Wires one knowledge base from one ``Settings`` object: embedder, stores, indexer and retriever."""
from __future__ import annotations

import logging
import threading

from ingest.chunking import Chunker
from ingest.embedding import Embedder, TextEmbedder
from ingest.indexer import Indexer
from ingest.loaders import DocumentLoader
from ingest.registry import Registry
from ingest.state import StateDatabase
from ingest.stores.bm25_index import BM25Index
from ingest.stores.milvus_keyword import MilvusKeywordIndex
from ingest.stores.milvus_store import MilvusVectorStore
from ingest.stores.no_keyword_index import NoKeywordIndex
from ingest.stores.protocols import SearchableVectorStore
from ingest.text_tokenizer import BM25Tokenizer
from rag_app.config import Settings
from rag_app.retrieval.pipeline import HybridRetriever
from rag_app.retrieval.protocols import KeywordStore
from rag_app.retrieval.rerank import CrossEncoderReranker

from .calibration_store import CALIBRATION_KEY, CalibrationStore
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
        database: StateDatabase | None = None,
    ) -> None:
        """``embedder``: an already loaded one to share (tests, several knowledge bases in one process),
        or any other ``TextEmbedder`` (a test's in-memory one). ``vectors``: a vector store to use
        instead of opening Milvus at ``settings.milvus_uri`` (a test's in-memory one); its ``warm_up``
        is still called, and the knowledge base closes it with itself. ``database``: the state
        database to share with other knowledge bases of this process (left open by ``close``).

        Keyword search (``settings.bm25.backend``): ``local``, the in-process ``BM25Index`` beside the
        registry (``bm25``); ``milvus``, Milvus full-text search in the chunks collection itself
        (``bm25`` is then None: the indexer writes the tokens with the vectors); ``none``, no keyword
        search (dense alone). ``keyword_index`` is what keyword search reads in every case."""
        self.configured = settings  # as given; ``settings`` adds the reranker rag-tune switched on
        self.settings = apply_active(settings)
        self._warm = False
        self._lock = threading.Lock()
        self.embedder: TextEmbedder = (
            embedder if embedder is not None else Embedder(settings.embedder, data_dir=settings.data_dir)
        )
        self._given_vectors = vectors
        self._shared_database = database
        self.tokenizer = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords)
        self.registry: Registry | None = None
        self.calibrations: CalibrationStore | None = None  # where its calibration is kept (state database)
        self.vectors: SearchableVectorStore | None = None
        self.bm25: BM25Index | None = None  # the in-process index (bm25.backend: local)
        self.keyword_index: KeywordStore | None = None  # the local index or Milvus's, whichever serves
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
            in_milvus = s.bm25.backend == "milvus"
            vectors = self._given_vectors
            if vectors is None:
                full_text = s.bm25 if in_milvus else None
                vectors = MilvusVectorStore(s.milvus_settings, s.milvus_uri, self.embedder.dim, full_text=full_text)
            elif in_milvus and not (isinstance(vectors, MilvusVectorStore) and vectors.full_text is not None):
                raise ValueError("bm25.backend: milvus needs a Milvus vector store opened with full_text")
            vectors.warm_up()
            self.vectors = vectors
            self.embedder.warm_up()
            self.registry = Registry(self._shared_database or StateDatabase(s.database_url), kb=s.knowledge_base)
            self.calibrations = CalibrationStore(self.registry.db, legacy_path=s.calibration_path,
                                                 key=self.registry.scoped_name(CALIBRATION_KEY))
            keyword_index: KeywordStore
            if in_milvus and isinstance(vectors, MilvusVectorStore):
                self.bm25 = None  # the indexer writes each chunk's tokens with its vector
                keyword_index = MilvusKeywordIndex(vectors, s.bm25)
            elif s.bm25.backend == "none":
                self.bm25 = None  # dense retrieval alone
                keyword_index = NoKeywordIndex(vectors)
            else:
                self.bm25 = keyword_index = BM25Index(
                    s.bm25_dir, k1=s.bm25.k1, b=s.bm25.b, epsilon=s.bm25.epsilon, idf=s.bm25.idf
                )
            self.keyword_index = keyword_index
            chunker = Chunker(s.chunker, self.embedder)
            self.indexer = Indexer(
                self.embedder,
                chunker,
                self.vectors,
                self.bm25,
                self.tokenizer,
                self.registry,
                load=DocumentLoader(s.loaders),
            )
            reranker = CrossEncoderReranker(s.retrieval.reranker) if s.retrieval.reranker.enabled else None
            self.retriever = HybridRetriever(
                s.retrieval,
                self.embedder,
                self.vectors,
                keyword_index,
                self.tokenizer,
                reranker,
                reference_cache_dir=s.embedder_cache_dir / "calibration",
                # This knowledge base's own cutoff and fusion, if calibrated (service.calibration).
                kb_calibration=self.calibrations.load(),
            )
            self.retriever.warm_up()
            self._warm = True
            log.info(
                "knowledge base ready: %s, Milvus at %s, keyword search %s", s.embedder.model, s.milvus_uri,
                {"milvus": "in Milvus", "none": "off (dense only)"}.get(s.bm25.backend, "in process"),
            )
            return self

    def stores(self) -> tuple[Registry, SearchableVectorStore, KeywordStore]:
        """The registry, vector (Milvus) and keyword (in-process BM25, or Milvus's) stores of a warmed
        knowledge base."""
        if self.registry is None or self.vectors is None or self.keyword_index is None:
            raise RuntimeError("the knowledge base is not warmed up (KnowledgeBase.warm_up)")
        return self.registry, self.vectors, self.keyword_index

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
            if self.registry is not None and self._shared_database is None:
                self.registry.close()
            self._warm = False
