"""The tables ``rag-eval`` prints (Markdown, so they paste into BENCHMARKS.md as they are)."""
from __future__ import annotations

import math
from typing import Any

from rag_app.evaluation.calibration import THRESHOLDABLE, StageCalibration
from rag_app.evaluation.fusion_tuning import FusionCheck, SettingResult
from rag_app.evaluation.refusal import RefusalResult

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


def refusal_table(rows: list[tuple[str, list[RefusalResult]]]) -> str:
    lines = [
        "| set | cutoff | in-domain answered | answer set holds a relevant chunk | off-topic refused | holes refused"
        " | AUC in-domain vs off-topic | AUC vs holes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, results in rows:
        for r in results:
            lines.append(
                f"| {name} | {r.rule} | {_fmt(r.answered, '.1%')} ({r.questions} q)"
                f" | {_fmt(r.answer_set_relevant, '.1%')}"
                f" | {_fmt(r.offtopic_refused, '.1%')} ({r.offtopic_questions} q) | {_fmt(r.holes_refused, '.1%')}"
                f" ({r.holes} q) | {_fmt(r.auc_offtopic)} | {_fmt(r.auc_holes)} |"
            )
    return "\n".join(lines)


def kb_fusion_table(rows: list[FusionCheck]) -> str:
    lines = [
        "| set | per-knowledge-base fusion | nDCG@10 | better leg | its nDCG@10 | Δ [95% CI] | configured hybrid |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        d, lo, hi = r.gain
        lines.append(
            f"| {r.dataset} | {r.chosen.label} | {r.ndcg:.3f} | {r.better_leg} | {r.better_leg_ndcg:.3f}"
            f" | {d:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r.configured_ndcg:.3f} |"
        )
    return "\n".join(lines)


def answer_table(rows: list[tuple[str, list[tuple[str, dict[str, Any]]]]]) -> str:
    """One row per set and refusal rules: accuracy on answerable questions, refusal of holes and
    off-topic questions (and by whom), citation precision, latency."""
    lines = [
        "| set | refusal rules | accuracy | F1 | answerable refused | holes refused | off-topic refused"
        " | unanswerable (written) refused | all unanswerable refused"
        " | refused by threshold / check / model / unsupported / off question / unsure (all kinds) | citation precision"
        " | prompt markup | first token p50 s | total p50 s | check p50 s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, settings in rows:
        for label, s in settings:
            a = s.get("answerable", {})
            by = " / ".join(
                str(sum(round(g[k] * g["questions"]) for g in _groups(s))) for k in
                ("refused_threshold", "refused_check", "refused_model", "refused_unsupported",
                 "refused_off_question", "refused_unsure")
            )
            lines.append(
                f"| {name} | {label} | {_pct(a.get('accuracy'))} | {_fmt(a.get('f1', math.nan), '.2f')}"
                f" | {_pct(a.get('refused'))} | {_pct(s.get('hole', {}).get('refused'))}"
                f" | {_pct(s.get('offtopic', {}).get('refused'))} | {_pct(s.get('unanswerable', {}).get('refused'))}"
                f" | {_pct(s.get('unanswerable_refused'))} | {by}"
                f" | {_pct(a.get('citation_precision'))} | {sum(g['prompt_markup'] for g in _groups(s))}"
                f" | {_fmt(a.get('first_token_p50_s', math.nan), '.1f')}"
                f" | {_fmt(a.get('total_p50_s', math.nan), '.1f')} | {_fmt(a.get('check_p50_s', math.nan), '.2f')} |"
            )
    return "\n".join(lines)


def _groups(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [summary[k] for k in ("answerable", "hole", "offtopic", "unanswerable") if k in summary]


def _pct(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.1%}"
