"""Choose fusion settings (method, per-leg weights, candidate depth) from evaluation sets.

Every setting is replayed offline on candidates collected once at the largest depth: a smaller
depth keeps the chunks either leg ranked within it (exact for FLAT search and BM25, whose rankings
do not depend on how many results are asked for), then fuses them as ``HybridRetriever.run`` would.
The choice maximises the *worst* per-set gain over that set's better single leg, so a setting
that helps one set by hurting another loses to one that helps both.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rag_app.config import FusionSettings
from rag_app.evaluation.beir_eval import (
    Candidate,
    CandidateSet,
    fused_order,
    leg_run,
    paired_bootstrap,
    per_query_ndcg,
    to_doc_scores,
)


@dataclass(frozen=True)
class FusionSetting:
    method: Literal["rrf", "weighted_sum"]
    dense_weight: float
    bm25_weight: float
    depth: int
    rrf_k: int = 60

    @property
    def label(self) -> str:
        k = f" k={self.rrf_k}" if self.method == "rrf" else ""
        return f"{self.method}{k}, dense {self.dense_weight:g} / bm25 {self.bm25_weight:g}, depth {self.depth}"

    @classmethod
    def of(cls, settings: FusionSettings, depth: int) -> FusionSetting:
        """The configured (or calibrated) fusion at ``depth`` per leg, as a grid point."""
        return cls(settings.method, settings.dense_weight, settings.bm25_weight, depth, settings.rrf_k)

    def as_settings(self) -> FusionSettings:
        return FusionSettings(method=self.method, rrf_k=self.rrf_k, dense_weight=self.dense_weight,
                              bm25_weight=self.bm25_weight)

    def as_config(self) -> dict[str, object]:
        """The matching ``retrieval`` section of the YAML settings."""
        return {
            "dense_top_k": self.depth,
            "bm25_top_k": self.depth,
            "fusion": {
                "method": self.method,
                "rrf_k": self.rrf_k,
                "dense_weight": self.dense_weight,
                "bm25_weight": self.bm25_weight,
            },
        }


@dataclass
class SettingResult:
    setting: FusionSetting
    ndcg: dict[str, float]  # dataset -> nDCG@10
    gain: dict[str, tuple[float, float, float]]  # dataset -> (mean, ci low, ci high) vs better leg

    @property
    def worst_gain(self) -> float:
        return min(g[0] for g in self.gain.values())

    @property
    def mean_ndcg(self) -> float:
        return sum(self.ndcg.values()) / len(self.ndcg)


WEIGHTS = ((1.0, 1.0), (1.0, 0.75), (0.75, 1.0), (1.0, 0.5), (0.5, 1.0))


def default_grid(max_depth: int) -> list[FusionSetting]:
    depths = sorted({d for d in (20, 50, 100) if d <= max_depth} | {max_depth})
    grid = [
        FusionSetting("rrf", dw, bw, depth, k)
        for (dw, bw), depth, k in itertools.product(WEIGHTS, depths, (20, 60))
    ]
    grid += [FusionSetting("weighted_sum", dw, bw, depth) for (dw, bw), depth in itertools.product(WEIGHTS, depths)]
    return grid


def within_depth(chunks: Iterable[Candidate], depth: int) -> list[Candidate]:
    """The candidates a retriever asking each leg for ``depth`` results would have seen."""
    return [
        c
        for c in chunks
        if (c.dense_rank is not None and c.dense_rank <= depth) or (c.bm25_rank is not None and c.bm25_rank <= depth)
    ]


def setting_run(cands: CandidateSet, s: FusionSetting) -> dict[str, dict[str, float]]:
    return {
        q.qid: to_doc_scores(
            fused_order(within_depth(q.chunks, s.depth), s.method, s.dense_weight, s.bm25_weight, s.rrf_k)
        )
        for q in cands.queries
    }


def best_leg(cands: CandidateSet) -> tuple[str, dict[str, float]]:
    """The better single leg by nDCG@10 and its per-query values."""
    per_leg = {leg: per_query_ndcg(leg_run(cands, leg), cands) for leg in ("dense", "bm25")}
    name = max(per_leg, key=lambda leg: sum(per_leg[leg].values()))
    return name, per_leg[name]


def tune(sets: Sequence[CandidateSet], grid: Sequence[FusionSetting] | None = None) -> list[SettingResult]:
    """Every setting scored on every set, best first (worst-set gain, then mean nDCG@10)."""
    if not sets:
        return []
    grid = list(grid) if grid is not None else default_grid(min(c.depth for c in sets))
    baselines = {c.dataset: best_leg(c)[1] for c in sets}
    results = []
    for s in grid:
        ndcg: dict[str, float] = {}
        gain: dict[str, tuple[float, float, float]] = {}
        for c in sets:
            per_q = per_query_ndcg(setting_run(c, s), c)
            ndcg[c.dataset] = sum(per_q.values()) / max(len(per_q), 1)
            gain[c.dataset] = paired_bootstrap(per_q, baselines[c.dataset], n=500)
        results.append(SettingResult(s, ndcg, gain))
    results.sort(key=lambda r: (-round(r.worst_gain, 4), -r.mean_ndcg, r.setting.label))
    return results


@dataclass
class FusionCheck:
    """A chosen fusion on labelled questions, against the better single leg and the configured one."""

    dataset: str
    chosen: FusionSetting
    ndcg: float
    better_leg: str
    better_leg_ndcg: float
    gain: tuple[float, float, float]  # chosen - better leg: mean, 95% interval
    configured_ndcg: float


def check_fusion(cands: CandidateSet, chosen: FusionSetting, configured: FusionSetting) -> FusionCheck:
    per_q = per_query_ndcg(setting_run(cands, chosen), cands)
    leg, leg_q = best_leg(cands)
    conf_q = per_query_ndcg(setting_run(cands, configured), cands)

    def mean(values: dict[str, float]) -> float:
        return sum(values.values()) / max(len(values), 1)

    return FusionCheck(cands.dataset, chosen, mean(per_q), leg, mean(leg_q), paired_bootstrap(per_q, leg_q),
                       mean(conf_q))
