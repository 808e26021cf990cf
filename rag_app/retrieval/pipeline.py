"""The hybrid retrieval pipeline: clean query -> dense + keyword legs -> merge -> fusion ->
calibrated scores -> optional rerank -> threshold.

Each stage is a small class in its own module (``dense``, ``keyword``, ``fusion``, ``threshold``,
``rerank``) written against the protocols in ``protocols``; :class:`HybridRetriever` only wires
them and times them, so a stage can be read, tested or replaced on its own.
"""
from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ingest.text_cleaning import remove_unsafe_characters
from ingest.types import Chunk
from rag_app.config import RetrievalSettings

from .candidates import Candidates
from .dense import DenseSearch
from .fusion import Fusion
from .kb_calibration import KnowledgeBaseCalibration
from .keyword import KeywordSearch
from .protocols import KeywordIndex, PassageScorer, QueryEmbedder, Tokenizer, VectorStore
from .rerank import Rerank
from .results import RetrievalResult, RetrievedChunk, best_keyword_coverage
from .threshold import ScoreCalibration, Threshold


def clean_query(query: str, max_chars: int) -> str:
    """The query as both legs see it: unsafe characters out (the one rule of
    ``ingest.text_cleaning``, controls turned into spaces), full-width forms folded (NFKC: "ＡＢＣ"
    must match "ABC"), whitespace collapsed to single spaces, at most ``max_chars`` characters."""
    query = unicodedata.normalize("NFKC", remove_unsafe_characters(query or ""))
    query = " ".join(query.split())
    return query[:max_chars]


class HybridRetriever:
    """Dense (vector store) + BM25 retrieval, fused, calibrated, optionally reranked, thresholded.

    Light to construct; :meth:`warm_up` embeds the threshold's reference passages. ``settings`` and
    ``reranker`` may be reassigned while serving (the knowledge base does when a tuned reranker is
    switched on; evaluation swaps settings for a run): the stages that depend on them are rebuilt
    on assignment, and a query in flight keeps the stages it started with.
    """

    def __init__(
        self,
        settings: RetrievalSettings,
        embedder: QueryEmbedder,
        vectors: VectorStore,
        bm25: KeywordIndex,
        tokenizer: Tokenizer,
        reranker: PassageScorer | None = None,
        reference_cache_dir: Path | None = None,
        kb_calibration: KnowledgeBaseCalibration | None = None,
    ) -> None:
        self.dense = DenseSearch(embedder, vectors)
        self.keyword = KeywordSearch(bm25, tokenizer)
        self.calibration = ScoreCalibration(
            embedder, vectors, bm25, settings.background_sample, reference_cache_dir=reference_cache_dir
        )
        self._reranker = reranker if settings.reranker.enabled else None
        self._kb_calibration = kb_calibration
        self.settings = settings  # builds fusion, threshold and rerank

    # --- configuration ----------------------------------------------------------------------------
    @property
    def settings(self) -> RetrievalSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: RetrievalSettings) -> None:
        self._settings = settings
        self.calibration.sample_size = settings.background_sample
        self._build_calibrated_stages()
        self.rerank = self._rerank_stage()

    @property
    def kb_calibration(self) -> KnowledgeBaseCalibration | None:
        """This knowledge base's calibrated relevance cutoff and fusion (None: the configured ones)."""
        return self._kb_calibration

    @kb_calibration.setter
    def kb_calibration(self, calibration: KnowledgeBaseCalibration | None) -> None:
        # Swapped whole while serving: a query in flight keeps the stages it started with.
        self._kb_calibration = calibration
        self._build_calibrated_stages()

    def _build_calibrated_stages(self) -> None:
        s, cal = self._settings, self._kb_calibration
        self.fusion = Fusion(cal.fusion_for(s.fusion) if cal is not None else s.fusion)
        self.threshold = Threshold(s.threshold, cal)

    @property
    def reranker(self) -> PassageScorer | None:
        return self._reranker

    @reranker.setter
    def reranker(self, reranker: PassageScorer | None) -> None:
        self._reranker = reranker
        self.rerank = self._rerank_stage()

    def _rerank_stage(self) -> Rerank | None:
        return Rerank(self._reranker, self._settings.reranker) if self._reranker is not None else None

    def variant(self, settings: RetrievalSettings, reranker: PassageScorer | None) -> HybridRetriever:
        """Another retriever over the same stores and calibration, with other settings (evaluation
        beside the live one, which keeps serving unchanged)."""
        other = HybridRetriever(
            settings,
            self.dense.embedder,
            self.dense.vectors,
            self.keyword.index,
            self.keyword.tokenizer,
            reranker,
            reference_cache_dir=self.calibration.reference_cache_dir,
            kb_calibration=self._kb_calibration,
        )
        other.calibration = self.calibration.variant(settings.background_sample)
        return other

    def warm_up(self) -> None:
        """Embed the reference passages now rather than on the first question."""
        self.calibration.warm_up()

    def invalidate_calibration(self) -> None:
        """Redraw the calibration's corpus sample on the next query (after the corpus changed)."""
        self.calibration.invalidate()

    # --- retrieval --------------------------------------------------------------------------------
    def run(
        self,
        query: str,
        top_k: int | None = None,
        query_vector: np.ndarray | None = None,
        leave_out: Callable[[Chunk], bool] | None = None,
    ) -> RetrievalResult:
        """The best ``top_k`` (default ``settings.top_k``) chunks that pass the threshold, the best
        rejected ones for display, and per-stage timings in ms (embed, dense, bm25, merge, rerank
        when on, total). ``query_vector``: the cleaned query's embedding, when the caller embedded
        many queries in one batch (calibration). ``leave_out``: chunks to treat as absent (the
        answer evaluation's questions whose evidence was removed)."""
        s = self.settings
        fusion, threshold, rerank = self.fusion, self.threshold, self.rerank
        top_k = top_k or s.top_k
        q = clean_query(query, s.max_query_chars)
        timings: dict[str, float] = {}
        if not q:
            return RetrievalResult(query=q, chunks=[], candidates=0, note="empty query")
        if len(self.keyword) == 0:
            return RetrievalResult(query=q, chunks=[], candidates=0, note="the knowledge base is empty")

        t0 = time.perf_counter()
        qvec = self.dense.embed(q) if query_vector is None else query_vector
        timings["embed"] = _ms(t0)

        t = time.perf_counter()
        dense_hits = self.dense.run(qvec, s.dense_top_k) if fusion.settings.dense_weight > 0 else []
        timings["dense"] = _ms(t)

        t = time.perf_counter()
        tokens = self.keyword.tokenize(q)
        bm25_hits = self.keyword.run(tokens, s.bm25_top_k) if fusion.settings.bm25_weight > 0 else []
        timings["bm25"] = _ms(t)

        t = time.perf_counter()
        found = Candidates.from_legs(dense_hits, bm25_hits)
        # Each leg scores what only the other leg found, so every candidate carries both scores.
        found.add_dense(self.dense.fill(qvec, found.bm25_only()))
        found.add_bm25(self.keyword.fill(tokens, found.dense_only()))
        if leave_out is not None:
            found = found.without(leave_out)
        timings["merge"] = _ms(t)

        candidates = self._score(found, fusion.run(found), qvec, self.keyword.max_score(tokens), threshold)
        if rerank is not None:
            t = time.perf_counter()
            candidates = rerank.run(q, candidates)
            timings["rerank"] = _ms(t)

        passed, rejected = threshold.run(candidates)
        timings["total"] = _ms(t0)
        note = "" if passed else "no chunk passed the relevance threshold"
        return RetrievalResult(
            query=q,
            chunks=passed[:top_k],
            candidates=len(candidates),
            below_threshold=rejected[:top_k],
            timings_ms=timings,
            note=note,
            keyword_coverage=best_keyword_coverage(candidates),
            on_topic=threshold.calibration.on_topic(candidates) if threshold.calibration is not None else None,
        )

    def _score(
        self, found: Candidates, fused: dict[str, float], qvec: np.ndarray, bm25_max: float, threshold: Threshold
    ) -> list[RetrievedChunk]:
        """Every candidate with its evidence, calibrated, in fused order (ties by chunk id)."""
        ids = found.ids
        cosines = np.array([found.dense_scores.get(c, -1.0) for c in ids], dtype=np.float32)
        z, margins = self.calibration.run(qvec, cosines)
        candidates = [
            RetrievedChunk(
                chunk=found.chunks[c],
                dense_score=float(found.dense_scores.get(c, float("nan"))),
                dense_z=float(zc),
                dense_margin=float(mc),
                bm25_score=float(found.bm25_scores.get(c, 0.0)),
                dense_rank=found.dense_rank(c),
                bm25_rank=found.bm25_rank(c),
                fused_score=float(fused.get(c, 0.0)),
                bm25_coverage=found.bm25_scores.get(c, 0.0) / bm25_max if bm25_max > 0 else 0.0,
            )
            for c, zc, mc in zip(ids, z, margins)
        ]
        if threshold.calibration is not None:
            for r in candidates:
                r.relevance = threshold.calibration.relevance(r)
        candidates.sort(key=lambda r: (-r.fused_score, r.chunk_id))
        return candidates


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
