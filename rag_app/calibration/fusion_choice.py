"""The fusion that ranks the probes' evidence best on this knowledge base.

Each probe has one relevant chunk (its edited source chunk), so every fusion setting can be
replayed offline on the probes' candidates and scored by nDCG@10 (``evaluation.fusion_tuning``).
The grid holds both single legs, so the choice is never worse on the probes than the better leg;
``rag-eval --tune-fusion`` remains the labelled check that this carries over to real questions.
"""
from __future__ import annotations

import itertools

from rag_app.config import FusionSettings
from rag_app.evaluation.beir_eval import CandidateSet
from rag_app.evaluation.fusion_tuning import FusionSetting, SettingResult, tune

HYBRID_WEIGHTS = ((1.0, 1.0), (1.0, 0.75), (0.75, 1.0), (1.0, 0.5), (0.5, 1.0), (1.0, 0.25), (0.25, 1.0))


def fusion_grid(depth: int) -> list[FusionSetting]:
    grid = [FusionSetting("weighted_sum", 1.0, 0.0, depth), FusionSetting("weighted_sum", 0.0, 1.0, depth)]
    for (dw, bw), method in itertools.product(HYBRID_WEIGHTS, ("weighted_sum", "rrf")):
        grid.append(FusionSetting(method, dw, bw, depth))  # type: ignore[arg-type]
    return grid


def choose_fusion(probes: CandidateSet, depth: int) -> tuple[FusionSettings, str, list[SettingResult]]:
    """The setting with the best mean nDCG@10 on the probes, a one-line account, every result."""
    results = tune([probes], fusion_grid(depth))
    results.sort(key=lambda r: (-round(r.mean_ndcg, 4), r.setting.label))
    best = results[0]
    by_label = {r.setting.label: r.mean_ndcg for r in results}
    dense = by_label[FusionSetting("weighted_sum", 1.0, 0.0, depth).label]
    bm25 = by_label[FusionSetting("weighted_sum", 0.0, 1.0, depth).label]
    equal = by_label[FusionSetting("weighted_sum", 1.0, 1.0, depth).label]
    note = (
        f"probe nDCG@10: chosen {best.mean_ndcg:.3f} ({best.setting.label}); dense alone {dense:.3f},"
        f" BM25 alone {bm25:.3f}, equal weighted sum {equal:.3f}"
    )
    return best.setting.as_settings(), note, results
