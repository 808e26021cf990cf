"""Cross-encoder reranking (bge-reranker, bce-reranker, ms-marco MiniLM: any sequence classifier).

:class:`CrossEncoderReranker` is the model (loaded in ``warm_up``, scored within a time budget);
:class:`Rerank` is the pipeline stage that reorders the fused head with its scores.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag_app.config import RerankerSettings

from .protocols import PassageScorer
from .results import RetrievedChunk

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """A Hugging Face sequence classifier scoring (query, passage) pairs; satisfies
    :class:`~rag_app.retrieval.protocols.PassageScorer`."""

    def __init__(self, settings: RerankerSettings) -> None:
        self.settings = settings
        self._model: Any = None  # loaded in warm_up (transformers, imported there: slow to import)
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            name = self.settings.model
            if not name:
                raise ValueError("reranker enabled but no model configured (retrieval.reranker.model)")
            local = Path(name).expanduser()
            source = str(local) if local.exists() else name
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32)
            except OSError as exc:
                raise RuntimeError(
                    f"reranker model '{name}' is neither a local folder nor downloadable here: {exc}"
                ) from exc
            self._model = model.to(self.settings.device).eval()

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray | None:
        """Relevance logits, or None if the time budget ran out (callers keep the fused order)."""
        import torch

        self.warm_up()
        assert self._model is not None and self._tokenizer is not None
        started = time.monotonic()
        out: list[np.ndarray] = []
        bs = self.settings.batch_size
        for i in range(0, len(passages), bs):
            if time.monotonic() - started > self.settings.timeout_s:
                log.warning("reranker over its %.1f s budget: keeping the fused order", self.settings.timeout_s)
                return None
            batch = list(passages[i : i + bs])
            enc = self._tokenizer(
                [query] * len(batch),
                batch,
                padding=True,
                truncation="only_second",
                max_length=self.settings.max_tokens,
                return_tensors="pt",
            ).to(self.settings.device)
            with torch.inference_mode():
                logits = self._model(**enc).logits
            # One logit (bge/bce/ms-marco) is the relevance; with two classes take "relevant".
            rel = logits[:, -1] if logits.shape[-1] > 1 else logits[:, 0]
            out.append(rel.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _standardised(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return (x - x.mean()) / std if std > 1e-9 else np.zeros_like(x)


def rerank_order(fused: np.ndarray, rerank: np.ndarray, blend: float) -> np.ndarray:
    """Indices of the reranked head, best first. ``blend`` 1 is the reranker's own order; below 1
    the order mixes both scores, standardised over the head, so a reranker trained on little data
    adds to the fused evidence instead of replacing it. Ties keep the fused order."""
    key = rerank if blend >= 1.0 else (1.0 - blend) * _standardised(fused) + blend * _standardised(rerank)
    return np.argsort(-key, kind="stable")


class Rerank:
    """Rescores the top ``settings.max_candidates`` fused candidates with the cross-encoder and
    reorders them (by ``settings.blend`` of both scores); the tail keeps the fused order.

    When the reranker runs out of its time budget, the candidates come back as they were: a slow
    reranker must not cost the user the answer."""

    def __init__(self, reranker: PassageScorer, settings: RerankerSettings) -> None:
        self.reranker = reranker
        self.settings = settings

    def run(self, query: str, candidates: list[RetrievedChunk]) -> list[RetrievedChunk]:
        head = candidates[: self.settings.max_candidates]
        scores = self.reranker.score(query, [c.text for c in head])
        if scores is None:
            return candidates
        for c, sc in zip(head, scores):
            c.rerank_score = float(sc)
        fused = np.array([c.fused_score for c in head], dtype=np.float64)
        order = rerank_order(fused, np.asarray(scores, dtype=np.float64), self.settings.blend)
        return [head[i] for i in order] + candidates[len(head) :]
