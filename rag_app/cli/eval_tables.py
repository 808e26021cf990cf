"""The tables ``rag-eval`` prints (Markdown, so they paste into BENCHMARKS.md as they are)."""
from __future__ import annotations

import math

from rag_app.evaluation.calibration import THRESHOLDABLE, StageCalibration
from rag_app.evaluation.fusion_tuning import SettingResult

METRICS = (("ndcg@10", "nDCG@10"), ("recall@10", "Recall@10"), ("recall@100", "Recall@100"), ("mrr@10", "MRR@10"))


def _fmt(x: float, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def legs_table(rows: list[tuple[str, dict[str, dict[str, float]]]]) -> str:
    lines = [
        "| set | ranking | " + " | ".join(h for _, h in METRICS) + " | ms/query p50 | p95 |",
        "|---|---|" + "---:|" * (len(METRICS) + 2),
    ]
    for name, res in rows:
        for leg, m in res.items():
            lines.append(
                f"| {name} | {leg} | " + " | ".join(_fmt(m[k]) for k, _ in METRICS)
                + f" | {m['ms_p50']:.0f} | {m['ms_p95']:.0f} |"
            )
    return "\n".join(lines)


def calibration_table(rows: list[tuple[str, list[StageCalibration]]]) -> str:
    lines = [
        "| set | score | cutoff | relevant kept | answer set holds a relevant chunk (no cutoff) | in-domain answered"
        " | out-of-domain refused | AUC |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cals in rows:
        for c in cals:
            mark = " (threshold option)" if c.stage in THRESHOLDABLE else ""
            lines.append(
                f"| {name} | {c.stage}{mark} | {_fmt(c.cutoff, '.4g')} | {_fmt(c.relevant_kept, '.1%')}"
                f" ({c.questions} q) | {_fmt(c.answer_set_relevant, '.1%')}"
                f" ({_fmt(c.answer_set_relevant_unthresholded, '.1%')})"
                f" | {_fmt(c.in_domain_answered, '.1%')} | {_fmt(c.ood_refused, '.1%')} ({c.ood_questions} q)"
                f" | {_fmt(c.separation_auc)} |"
            )
    return "\n".join(lines)


def fusion_table(results: list[SettingResult], top: int) -> str:
    names = list(results[0].ndcg) if results else []
    lines = [
        "| fusion setting | " + " | ".join(f"{n} nDCG@10 | Δ vs better leg [95% CI]" for n in names) + " |",
        "|---|" + "---:|---:|" * len(names),
    ]
    for r in results[:top]:
        cells = []
        for n in names:
            d, lo, hi = r.gain[n]
            cells.append(f"{r.ndcg[n]:.3f} | {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| {r.setting.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
