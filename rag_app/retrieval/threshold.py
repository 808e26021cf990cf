"""When is a chunk relevant enough to answer from? Calibrated dense scores and the threshold.

A raw cosine means little on its own (e5 puts unrelated text at 0.7-0.8), so each candidate's
cosine is read against two references:

* ``dense_z``: robust standard deviations above the query's similarity to a fixed sample of corpus
  chunks (what "unrelated, in this corpus" looks like for this query);
* ``dense_margin``: the cosine minus the query's best cosine to generic reference passages
  (``data/reference_passages.txt``), which needs no corpus at all.

:class:`ScoreCalibration` computes both; :class:`Threshold` applies ``retrieval.threshold``.
"""
from __future__ import annotations

import threading
from collections.abc import Sized
from pathlib import Path

import numpy as np

from rag_app.config import ThresholdSettings

from .embedding_cache import cached_embeddings
from .kb_calibration import KnowledgeBaseCalibration
from .protocols import QueryEmbedder, VectorStore
from .results import RetrievedChunk

REFERENCE_PASSAGES = Path(__file__).with_name("data") / "reference_passages.txt"
MIN_BACKGROUND = 8  # fewer sampled chunks than this: no idea what "unrelated" looks like


def load_reference_passages(path: Path = REFERENCE_PASSAGES) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class ScoreCalibration:
    """``dense_z`` and ``dense_margin`` for a query's candidate cosines.

    Light to build; :meth:`warm_up` embeds the reference passages (once per embedder model, cached
    as a ``.npy`` under ``reference_cache_dir`` so a restart does not embed them again). The corpus
    sample is drawn on first use and redrawn when the corpus size (``len(corpus)``) moved by over
    10%, or after :meth:`invalidate`."""

    def __init__(
        self,
        embedder: QueryEmbedder,
        vectors: VectorStore,
        corpus: Sized,
        sample_size: int,
        reference_cache_dir: Path | None = None,
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.corpus = corpus
        self.sample_size = sample_size  # read when the sample is (re)drawn
        self.reference_cache_dir = reference_cache_dir
        self._background: np.ndarray | None = None
        self._background_size = -1
        self._reference: np.ndarray | None = None
        self._lock = threading.Lock()

    def variant(self, sample_size: int) -> ScoreCalibration:
        """A calibration over the same stores that shares the reference vectors (if already
        embedded) but draws its own corpus sample."""
        other = ScoreCalibration(self.embedder, self.vectors, self.corpus, sample_size, self.reference_cache_dir)
        other._reference = self._reference
        return other

    def warm_up(self) -> None:
        """Embed the reference passages now rather than on the first question."""
        self.reference_vectors()

    def invalidate(self) -> None:
        """Redraw the corpus sample on the next query (the corpus changed)."""
        with self._lock:
            self._background = None

    def run(self, query_vector: np.ndarray, cosines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(``dense_z``, ``dense_margin``) for each cosine, same shape; z is NaN everywhere when the
        corpus is too small to sample."""
        z = self._robust_z(query_vector, cosines)
        margins = cosines - float((self.reference_vectors() @ query_vector).max())
        return z, margins

    def _robust_z(self, query_vector: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        bg = self.background_vectors()
        if len(bg) < MIN_BACKGROUND:
            # Too few chunks to know what "unrelated" looks like: do not let anything through on a
            # guess... except when the user disabled the threshold.
            return np.full_like(cosines, np.nan)
        sims = bg @ query_vector
        # Median and MAD rather than mean and std: the sample may hold the few relevant chunks
        # themselves (small corpora), which would otherwise inflate the spread and hide them.
        mu = float(np.median(sims))
        sigma = 1.4826 * float(np.median(np.abs(sims - mu)))
        return (cosines - mu) / max(sigma, 1e-3)

    def background_vectors(self) -> np.ndarray:
        """A fixed sample of corpus vectors; resampled when the corpus size changed by over 10%."""
        size = len(self.corpus)
        with self._lock:
            stale = self._background is None or abs(size - self._background_size) > 0.1 * max(
                self._background_size, 1
            )
            if stale:
                self._background = self.vectors.sample_vectors(self.sample_size)
                self._background_size = size
            return self._background  # type: ignore[return-value]

    def reference_vectors(self) -> np.ndarray:
        """Embeddings of the generic reference passages, computed once per model and cached."""
        with self._lock:
            if self._reference is None:
                self._reference = cached_embeddings(
                    self.embedder, load_reference_passages(), "passage", self.reference_cache_dir, "reference"
                )
            return self._reference


class Threshold:
    """Splits ranked candidates into (passed, rejected), keeping their order.

    With ``settings.per_knowledge_base`` and a calibration for this knowledge base, a candidate
    passes when its calibrated ``relevance`` reaches the calibration's cutoff; otherwise (no
    calibration yet, or a knowledge base too small to calibrate) by the fallback rule
    ``settings.score >= settings.min_value``. A missing score (NaN, or not reranked) never passes;
    ``score: none`` passes everything."""

    def __init__(self, settings: ThresholdSettings, calibration: KnowledgeBaseCalibration | None = None) -> None:
        self.settings = settings
        self.calibration = calibration if settings.per_knowledge_base and settings.score != "none" else None

    def describe(self) -> str:
        if self.calibration is not None:
            return f"{self.calibration.score_label} >= {self.calibration.min_value:.4g} (calibrated)"
        th = self.settings
        return "none" if th.score == "none" else f"{th.score} >= {th.min_value} (fallback)"

    def run(self, candidates: list[RetrievedChunk]) -> tuple[list[RetrievedChunk], list[RetrievedChunk]]:
        th = self.settings
        if th.score == "none":
            return candidates, []
        cal = self.calibration
        passed: list[RetrievedChunk] = []
        rejected: list[RetrievedChunk] = []
        for c in candidates:
            if cal is not None:
                value, cutoff = c.relevance, cal.min_value
            else:
                value = {"dense_margin": c.dense_margin, "dense_z": c.dense_z, "rerank": c.rerank_score}[th.score]
                cutoff = th.min_value
            ok = value is not None and not np.isnan(value) and value >= cutoff
            (passed if ok else rejected).append(c)
        return passed, rejected
