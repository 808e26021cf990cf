"""Refusal at a cutoff, measured with labels: in-domain questions answered, the answer set holding
a relevant chunk, off-topic questions refused, and "holes" refused.

A hole is an in-domain question whose judged documents were removed from retrieval: a seeded share
of the questions, their judged documents' chunks dropped from the candidates and the legs'
ranks recomputed, which is exactly what a search filtering those documents out returns down to the
collected depth minus the dropped chunks (collected at 100 per leg, read at the deployed 50).
"""
from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag_app.config import FusionSettings
from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates, fused_order
from rag_app.evaluation.calibration import auc
from rag_app.evaluation.fusion_tuning import within_depth
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration, relevance_of


def reranked(chunks: Sequence[Candidate], depth: int) -> list[Candidate]:
    """Leg ranks recomputed after chunks were dropped or added: each leg's list by its score, cut
    at ``depth`` (what a search over the edited knowledge base would have returned)."""

    def ranks(returned: list[Candidate], key: Callable[[Candidate], float]) -> dict[str, int]:
        ordered = sorted(returned, key=lambda c: (-key(c), c.chunk_id))[:depth]
        return {c.chunk_id: i for i, c in enumerate(ordered, start=1)}

    dense = ranks([c for c in chunks if c.dense_rank is not None], lambda c: c.dense_score)
    bm25 = ranks([c for c in chunks if c.bm25_rank is not None], lambda c: c.bm25_score)
    out = [
        dataclasses.replace(c, dense_rank=dense.get(c.chunk_id), bm25_rank=bm25.get(c.chunk_id)) for c in chunks
    ]
    return [c for c in out if c.dense_rank is not None or c.bm25_rank is not None]


@dataclass(frozen=True)
class CutoffRule:
    """How the app decides: a value per candidate, its cutoff, and the fusion ordering the answer."""

    label: str
    value: Callable[[Candidate], float]
    min_value: float
    fusion: FusionSettings

    @classmethod
    def calibrated(cls, cal: KnowledgeBaseCalibration, configured: FusionSettings) -> CutoffRule:
        return cls(f"per knowledge base: {cal.score_label} >= {cal.min_value:.4g}",
                   lambda c: relevance_of(cal.weights, c), cal.min_value, cal.fusion_for(configured))

    @classmethod
    def fixed(cls, score: str, min_value: float, fusion: FusionSettings) -> CutoffRule:
        def value(c: Candidate) -> float:
            v = getattr(c, score)
            return math.nan if v is None else float(v)

        return cls(f"shipped: {score} >= {min_value:g}", value, min_value, fusion)


@dataclass
class RefusalResult:
    rule: str
    questions: int
    answered: float  # in-domain questions with a chunk at or above the cutoff
    answer_set_relevant: float  # ... whose top_k above the cutoff holds a relevant chunk
    offtopic_questions: int
    offtopic_refused: float
    holes: int
    holes_refused: float
    auc_offtopic: float  # P(an in-domain question's best value > an off-topic one's)
    auc_holes: float

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def holes_of(cands: CandidateSet, fraction: float, depth: int, seed: int = 0) -> CandidateSet:
    """A seeded ``fraction`` of the questions, each without its judged documents."""
    qids = sorted(q.qid for q in cands.queries)
    chosen = set(random.Random(seed).sample(qids, round(fraction * len(qids))))
    out = CandidateSet(f"{cands.dataset}-holes", depth=depth)
    for q in cands.queries:
        if q.qid in chosen:
            judged = {cid for cid, g in cands.qrels.get(q.qid, {}).items() if g > 0}
            kept = [c for c in q.chunks if c.corpus_id not in judged]
            out.queries.append(QueryCandidates(q.qid, reranked(kept, depth), q.latency_ms))
    return out


def _best(rule: CutoffRule, chunks: Sequence[Candidate]) -> float:
    values = [v for c in chunks if not math.isnan(v := rule.value(c))]
    return max(values) if values else -math.inf


def _refused(rule: CutoffRule, cands: CandidateSet | None, depth: int) -> tuple[float, np.ndarray]:
    if cands is None or not cands.queries:
        return math.nan, np.zeros(0)
    best = np.array([_best(rule, reranked(q.chunks, depth)) for q in cands.queries])
    return float(np.mean(~(best >= rule.min_value))), best


def refusal(
    rule: CutoffRule,
    cands: CandidateSet,
    offtopic: CandidateSet | None,
    holes: CandidateSet | None,
    depth: int,
    top_k: int,
) -> RefusalResult:
    answered = hits = 0
    best_in: list[float] = []
    for q in cands.queries:
        judged = cands.qrels.get(q.qid, {})
        chunks = reranked(q.chunks, depth)
        best_in.append(_best(rule, chunks))
        s = rule.fusion
        ordered = fused_order(within_depth(chunks, depth), s.method, s.dense_weight, s.bm25_weight, s.rrf_k)
        passing = [c for c in ordered if rule.value(c) >= rule.min_value]
        answered += bool(passing)
        hits += any(judged.get(c.corpus_id, 0) > 0 for c in passing[:top_k])
    n = max(len(cands.queries), 1)
    off_refused, off_best = _refused(rule, offtopic, depth)
    holes_refused, holes_best = _refused(rule, holes, depth)
    pos = np.array(best_in)
    return RefusalResult(
        rule=rule.label,
        questions=len(cands.queries),
        answered=answered / n,
        answer_set_relevant=hits / n,
        offtopic_questions=0 if offtopic is None else len(offtopic.queries),
        offtopic_refused=off_refused,
        holes=0 if holes is None else len(holes.queries),
        holes_refused=holes_refused,
        auc_offtopic=auc(pos, off_best),
        auc_holes=auc(pos, holes_best),
    )
