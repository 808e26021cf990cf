"""Hybrid retrieval: dense (Milvus) + BM25 legs, fusion, a calibrated threshold, optional reranking."""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ingest.stores.bm25_index import BM25Index
from ingest.stores.milvus_store import MilvusVectorStore, VectorHit
from ingest.text_tokenizer import BM25Tokenizer
from rag_app.config import RetrievalSettings
from rag_app.retrieval.fusion import reciprocal_rank_fusion, weighted_score_sum
from rag_app.retrieval.reranker import CrossEncoderReranker, rerank_order

log = logging.getLogger(__name__)


class QueryEmbedder(Protocol):
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


REFERENCE_PASSAGES = Path(__file__).with_name("data") / "reference_passages.txt"


def load_reference_passages(path: Path = REFERENCE_PASSAGES) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@dataclass
class RetrievedChunk:
    """A chunk with every leg's evidence, so callers and the UI can show why it was chosen."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    ordinal: int
    page: int | None
    section: str
    dense_score: float  # cosine similarity to the query
    dense_z: float  # robust std devs above the query's similarity to random corpus chunks
    dense_margin: float  # cosine minus the query's best cosine to generic unrelated passages
    bm25_score: float
    dense_rank: int | None  # 1-based rank in its leg, None if the leg did not return it
    bm25_rank: int | None
    fused_score: float
    rerank_score: float | None = None

    @property
    def location(self) -> str:
        parts = [f"p. {self.page}"] if self.page is not None else []
        if self.section:
            parts.append(self.section)
        return ", ".join(parts)


@dataclass
class RetrievalResult:
    query: str
    chunks: list[RetrievedChunk]  # passed the threshold, best first
    candidates: int  # candidates considered before the threshold
    below_threshold: list[RetrievedChunk] = field(default_factory=list)  # best rejected, for display
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why nothing came back, when nothing did

    @property
    def has_evidence(self) -> bool:
        return bool(self.chunks)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_query(query: str, max_chars: int) -> str:
    """Drop control characters, normalise width, collapse whitespace, bound the length."""
    query = unicodedata.normalize("NFKC", _CONTROL.sub(" ", query or ""))
    query = " ".join(query.split())
    return query[:max_chars]


class HybridRetriever:
    def __init__(
        self,
        settings: RetrievalSettings,
        embedder: QueryEmbedder,
        vectors: MilvusVectorStore,
        bm25: BM25Index,
        tokenizer: BM25Tokenizer,
        reranker: CrossEncoderReranker | None = None,
        reference_cache_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.vectors = vectors
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.reranker = reranker if settings.reranker.enabled else None
        self._background: np.ndarray | None = None
        self._background_size = -1
        self._reference: np.ndarray | None = None
        self._reference_cache_dir = reference_cache_dir
        self._lock = threading.Lock()

    def variant(self, settings: RetrievalSettings, reranker: CrossEncoderReranker | None) -> HybridRetriever:
        """Another retriever over the same stores and calibration, with other settings (evaluation
        beside the live one, which keeps serving unchanged)."""
        other = HybridRetriever(settings, self.embedder, self.vectors, self.bm25, self.tokenizer, reranker,
                                reference_cache_dir=self._reference_cache_dir)
        other._reference = self._reference
        return other

    # --- calibration ------------------------------------------------------------------------------
    def _background_vectors(self) -> np.ndarray:
        """A fixed sample of corpus vectors; resampled when the corpus size changed by over 10%."""
        size = len(self.bm25)
        with self._lock:
            stale = self._background is None or abs(size - self._background_size) > 0.1 * max(
                self._background_size, 1
            )
            if stale:
                self._background = self.vectors.sample_vectors(self.settings.background_sample)
                self._background_size = size
            return self._background  # type: ignore[return-value]

    def _reference_vectors(self) -> np.ndarray:
        """Embeddings of the generic reference passages, computed once per model and cached."""
        with self._lock:
            if self._reference is not None:
                return self._reference
            texts = load_reference_passages()
            cache: Path | None = None
            if self._reference_cache_dir is not None:
                model = getattr(getattr(self.embedder, "settings", None), "model", "embedder")
                prefix = getattr(getattr(self.embedder, "settings", None), "passage_prefix", "")
                key = hashlib.sha256("\x00".join([model, prefix, *texts]).encode("utf-8")).hexdigest()[:16]
                cache = self._reference_cache_dir / f"reference-{key}.npy"
                if cache.is_file():
                    self._reference = np.load(cache, allow_pickle=False)
                    return self._reference
            vectors = np.asarray(self.embedder.embed_documents(texts), dtype=np.float32)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp.npy")
                np.save(tmp, vectors, allow_pickle=False)
                tmp.replace(cache)
            self._reference = vectors
            return vectors

    def warm_up(self) -> None:
        """Embed the reference passages now rather than on the first question."""
        self._reference_vectors()

    def invalidate_calibration(self) -> None:
        with self._lock:
            self._background = None

    def _calibrate(self, qvec: np.ndarray, scores: np.ndarray) -> np.ndarray:
        bg = self._background_vectors()
        if len(bg) < 8:
            # Too few chunks to know what "unrelated" looks like: do not let anything through on a
            # guess... except when the user disabled the threshold.
            return np.full_like(scores, np.nan)
        sims = bg @ qvec
        # Median and MAD rather than mean and std: the sample may hold the few relevant chunks
        # themselves (small corpora), which would otherwise inflate the spread and hide them.
        mu = float(np.median(sims))
        sigma = 1.4826 * float(np.median(np.abs(sims - mu)))
        return (scores - mu) / max(sigma, 1e-3)

    # --- retrieval ---------------------------------------------------------------------------------
    def run(self, query: str, top_k: int | None = None) -> RetrievalResult:
        s = self.settings
        top_k = top_k or s.top_k
        q = clean_query(query, s.max_query_chars)
        timings: dict[str, float] = {}
        if not q:
            return RetrievalResult(query=q, chunks=[], candidates=0, note="empty query")
        if len(self.bm25) == 0:
            return RetrievalResult(query=q, chunks=[], candidates=0, note="the knowledge base is empty")

        t0 = time.perf_counter()
        qvec = np.asarray(self.embedder.embed_queries([q])[0], dtype=np.float32)
        timings["embed"] = _ms(t0)

        t = time.perf_counter()
        dense_hits = self.vectors.search(qvec, s.dense_top_k)[0] if s.fusion.dense_weight > 0 else []
        timings["dense"] = _ms(t)

        t = time.perf_counter()
        tokens = self.tokenizer.tokenize(q)
        bm25_hits = self.bm25.search(tokens, s.bm25_top_k) if tokens and s.fusion.bm25_weight > 0 else []
        timings["bm25"] = _ms(t)

        t = time.perf_counter()
        by_id: dict[str, VectorHit] = {h.chunk_id: h for h in dense_hits}
        dense_rank = {h.chunk_id: i for i, h in enumerate(dense_hits, start=1)}
        bm25_rank = {cid: i for i, (cid, _) in enumerate(bm25_hits, start=1)}
        bm25_score = {cid: sc for cid, sc in bm25_hits}
        dense_score = {h.chunk_id: h.score for h in dense_hits}

        # Fill in the other leg's score for candidates only one leg found, so every candidate
        # carries both (for the threshold, weighted fusion and display).
        bm25_only = [cid for cid in bm25_rank if cid not in by_id]
        for cid, (hit, vec) in self.vectors.fetch(bm25_only).items():
            by_id[cid] = hit
            dense_score[cid] = float(vec @ qvec)
        dense_only = [cid for cid in by_id if cid not in bm25_score]
        if dense_only and tokens:
            for cid, sc in zip(dense_only, self.bm25.get_scores(tokens, dense_only)):
                bm25_score[cid] = float(sc)
        timings["merge"] = _ms(t)

        ids = list(by_id)
        weights = {"dense": s.fusion.dense_weight, "bm25": s.fusion.bm25_weight}
        if s.fusion.method == "rrf":
            fused = reciprocal_rank_fusion(
                {"dense": [h.chunk_id for h in dense_hits], "bm25": [c for c, _ in bm25_hits]},
                weights,
                s.fusion.rrf_k,
            )
        else:
            fused = weighted_score_sum(
                {"dense": {c: dense_score.get(c, 0.0) for c in ids}, "bm25": {c: bm25_score.get(c, 0.0) for c in ids}},
                weights,
            )
        cosines = np.array([dense_score.get(c, -1.0) for c in ids], dtype=np.float32)
        z = self._calibrate(qvec, cosines)
        margins = cosines - float((self._reference_vectors() @ qvec).max())
        candidates = [
            RetrievedChunk(
                chunk_id=c,
                doc_id=by_id[c].doc_id,
                source=by_id[c].source,
                text=by_id[c].text,
                ordinal=by_id[c].ordinal,
                page=by_id[c].page,
                section=by_id[c].section,
                dense_score=float(dense_score.get(c, float("nan"))),
                dense_z=float(zc),
                dense_margin=float(mc),
                bm25_score=float(bm25_score.get(c, 0.0)),
                dense_rank=dense_rank.get(c),
                bm25_rank=bm25_rank.get(c),
                fused_score=float(fused.get(c, 0.0)),
            )
            for c, zc, mc in zip(ids, z, margins)
        ]
        candidates.sort(key=lambda r: (-r.fused_score, r.chunk_id))

        if self.reranker is not None:
            t = time.perf_counter()
            candidates = self._rerank(q, candidates)
            timings["rerank"] = _ms(t)

        passed, rejected = self._apply_threshold(candidates)
        timings["total"] = _ms(t0)
        note = "" if passed else "no chunk passed the relevance threshold"
        return RetrievalResult(
            query=q,
            chunks=passed[:top_k],
            candidates=len(candidates),
            below_threshold=rejected[:top_k],
            timings_ms=timings,
            note=note,
        )

    def _rerank(self, query: str, candidates: list[RetrievedChunk]) -> list[RetrievedChunk]:
        assert self.reranker is not None
        head = candidates[: self.settings.reranker.max_candidates]
        scores = self.reranker.score(query, [c.text for c in head])
        if scores is None:
            return candidates
        for c, sc in zip(head, scores):
            c.rerank_score = float(sc)
        fused = np.array([c.fused_score for c in head], dtype=np.float64)
        order = rerank_order(fused, np.asarray(scores, dtype=np.float64), self.settings.reranker.blend)
        return [head[i] for i in order] + candidates[len(head) :]

    def _apply_threshold(self, candidates: list[RetrievedChunk]) -> tuple[list[RetrievedChunk], list[RetrievedChunk]]:
        th = self.settings.threshold
        if th.score == "none":
            return candidates, []
        passed, rejected = [], []
        for c in candidates:
            value = {"dense_margin": c.dense_margin, "dense_z": c.dense_z, "rerank": c.rerank_score}[th.score]
            ok = value is not None and not np.isnan(value) and value >= th.min_value
            (passed if ok else rejected).append(c)
        return passed, rejected


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)
