"""Fusion of ranked legs (dense, BM25) into one order.

The two functions are pure (evaluation recomputes fusions offline with them); :class:`Fusion` is
the pipeline stage that applies ``retrieval.fusion`` to a :class:`Candidates` set.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from rag_app.config import FusionSettings

from .candidates import Candidates


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]], weights: Mapping[str, float], k: int = 60
) -> dict[str, float]:
    """score(d) = sum over legs of weight / (k + rank), ranks from 1. Absent from a leg: no term."""
    fused: dict[str, float] = {}
    for leg, ids in rankings.items():
        w = weights.get(leg, 1.0)
        if w == 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank)
    return fused


def weighted_score_sum(
    scores: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]
) -> dict[str, float]:
    """Min-max normalise each leg's scores over the candidates, then a weighted sum.

    ``scores[leg][chunk_id]``; a candidate missing from a leg counts as that leg's minimum."""
    ids = {cid for leg in scores.values() for cid in leg}
    fused = {cid: 0.0 for cid in ids}
    total_w = sum(weights.get(leg, 1.0) for leg in scores) or 1.0
    for leg, leg_scores in scores.items():
        w = weights.get(leg, 1.0) / total_w
        if not leg_scores or w == 0:
            continue
        lo, hi = min(leg_scores.values()), max(leg_scores.values())
        span = hi - lo
        for cid in ids:
            s = leg_scores.get(cid, lo)
            fused[cid] += w * ((s - lo) / span if span > 0 else 1.0)
    return fused


class Fusion:
    """One fused score per candidate, by ``settings.method``: ``rrf`` (ranks only) or
    ``weighted_sum`` (min-max normalised scores; a leg's missing score counts as 0)."""

    def __init__(self, settings: FusionSettings) -> None:
        self.settings = settings

    def run(self, candidates: Candidates) -> dict[str, float]:
        s = self.settings
        weights = {"dense": s.dense_weight, "bm25": s.bm25_weight}
        if s.method == "rrf":
            # The legs' full rankings: a BM25 id the vector store lacks still pushes later ones down.
            return reciprocal_rank_fusion(
                {"dense": candidates.dense_ranking, "bm25": candidates.bm25_ranking}, weights, s.rrf_k
            )
        ids = candidates.ids
        return weighted_score_sum(
            {
                "dense": {c: candidates.dense_scores.get(c, 0.0) for c in ids},
                "bm25": {c: candidates.bm25_scores.get(c, 0.0) for c in ids},
            },
            weights,
        )
