"""Does a tuned reranker help? The full pipeline on held-out generated questions, before and after.

Each held-out question's relevant document is the one its chunk came from (graded like BEIR: a
document's best chunk ranks it). The baseline is the pipeline as configured now (with the active
reranker, if any); the candidate is the same fused candidates re-ordered by the new reranker at
each blend weight, exactly as ``HybridRetriever`` would order them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rag_app.config import RerankerSettings, ThresholdSettings
from rag_app.evaluation.beir_eval import paired_bootstrap
from rag_app.evaluation.metrics import ndcg_query
from rag_app.retrieval.rerank import CrossEncoderReranker, rerank_order
from rag_app.retrieval.results import RetrievedChunk
from rag_app.tuning.negatives import normalised_text
from rag_app.tuning.training_data import TrainingExample

if TYPE_CHECKING:
    from rag_app.retrieval.protocols import SearchableKnowledgeBase


@dataclass
class HeldOutResult:
    queries: int
    baseline_ndcg: float
    by_blend: dict[float, float] = field(default_factory=dict)
    best_blend: float = 1.0
    gain_ci: tuple[float, float] = (0.0, 0.0)  # 95% paired-bootstrap interval of the best blend's gain

    @property
    def best_ndcg(self) -> float:
        return self.by_blend.get(self.best_blend, float("nan"))

    @property
    def gain(self) -> float:
        return self.best_ndcg - self.baseline_ndcg


def _doc_ranking(chunks: Sequence[RetrievedChunk]) -> list[str]:
    seen: list[str] = []
    for c in chunks:
        if c.doc_id not in seen:
            seen.append(c.doc_id)
    return seen


def _relevant_docs(ex: TrainingExample, *rankings: Sequence[RetrievedChunk]) -> dict[str, int]:
    """The question's relevant document: its ``doc_id`` when known; for a user's own line without
    one (plain FlagEmbedding), the documents of retrieved chunks whose text is a positive."""
    if ex.doc_id:
        return {ex.doc_id: 1}
    positives = {normalised_text(p) for p in ex.pos}
    return {c.doc_id: 1 for chunks in rankings for c in chunks if normalised_text(c.text) in positives}


def evaluate_held_out(
    kb: SearchableKnowledgeBase,
    examples: Sequence[TrainingExample],
    candidate: RerankerSettings,
    blends: Sequence[float],
    progress: Callable[[int, int], None] | None = None,
) -> HeldOutResult:
    assert kb.retriever is not None, "call kb.warm_up() first"
    live = kb.retriever
    no_threshold = live.settings.model_copy(update={"threshold": ThresholdSettings(score="none")})
    # Own retrievers over the shared stores: the app's retriever keeps serving users unchanged.
    # Without a reranker on, the configured order is the fused one: one retrieval per question.
    configured = live.variant(no_threshold, live.reranker) if live.reranker is not None else None
    fused_only = live.variant(no_threshold, None)
    reranker = CrossEncoderReranker(candidate.model_copy(update={"timeout_s": 1e9}))
    head = candidate.max_candidates
    base_scores: list[float] = []
    blend_scores: dict[float, list[float]] = {b: [] for b in blends}
    for i, ex in enumerate(examples, start=1):
        chunks = fused_only.run(ex.query, top_k=50).chunks
        baseline = configured.run(ex.query, top_k=50).chunks if configured is not None else chunks
        rels = _relevant_docs(ex, chunks, baseline)
        base_scores.append(ndcg_query(_doc_ranking(baseline), rels, 10))
        top = chunks[:head]
        scores = reranker.score(ex.query, [c.text for c in top])
        assert scores is not None
        fused = np.array([c.fused_score for c in top], dtype=np.float64)
        for b in blends:
            order = [top[j] for j in rerank_order(fused, scores, b)] + chunks[head:]
            blend_scores[b].append(ndcg_query(_doc_ranking(order), rels, 10))
        if progress:
            progress(i, len(examples))
    result = HeldOutResult(len(examples), float(np.mean(base_scores)) if base_scores else float("nan"))
    result.by_blend = {b: float(np.mean(v)) if v else float("nan") for b, v in blend_scores.items()}
    if base_scores:
        result.best_blend = max(blends, key=lambda b: (result.by_blend[b], -b))
        best = dict(enumerate(blend_scores[result.best_blend]))
        _, lo, hi = paired_bootstrap(
            {str(k): v for k, v in best.items()}, {str(k): v for k, v in enumerate(base_scores)}
        )
        result.gain_ci = (lo, hi)
    return result
