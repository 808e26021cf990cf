"""Cross-encoder reranking (bge-reranker, bce-reranker, ms-marco MiniLM: any sequence classifier)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_app.config import RerankerSettings

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    def __init__(self, settings: RerankerSettings) -> None:
        self.settings = settings
        self._model = None
        self._tokenizer = None
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
