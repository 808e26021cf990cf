"""Threshold calibration: how well each stage's score separates relevant from irrelevant chunks,
and which cutoff keeps a chosen share of the relevant evidence.

A question is refused when none of its candidates reaches the cutoff, so what matters per
question is its *best* score: for an in-domain question, its best relevant chunk's; for an
out-of-domain question (another set's), its best chunk's. The recommended cutoff is the
``1 - keep`` quantile of the in-domain best-relevant scores: at least ``keep`` of the in-domain
questions whose relevant chunk was retrieved still have it after the cutoff. The same cutoff is
then scored on out-of-domain questions (refusal rate) and on the answer set the app would show
(the top ``top_k`` chunks above the cutoff in fused order).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag_app.evaluation.beir_eval import Candidate, CandidateSet, by_fused_score
from rag_app.evaluation.fusion_tuning import within_depth

ScoreOf = Callable[[Candidate], "float | None"]

# Stage name -> the candidate's score at that stage. Raw cosine and RRF are here to show why
# they make poor cutoffs (their scale moves with the query and the corpus), not as options.
STAGES: dict[str, ScoreOf] = {
    "dense_cosine": lambda c: c.dense_score,
    "dense_margin": lambda c: c.dense_margin,
    "dense_z": lambda c: c.dense_z,
    "bm25": lambda c: c.bm25_score,
    "fused": lambda c: c.fused_score,
    "rerank": lambda c: c.rerank_score,
}
# Stages the retriever can threshold on (rag_app.config.ThresholdSettings.score).
THRESHOLDABLE = ("dense_margin", "dense_z", "rerank")


def _value(score: ScoreOf, c: Candidate) -> float:
    v = score(c)
    return math.nan if v is None else float(v)


def _best(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


@dataclass
class StageCalibration:
    stage: str
    cutoff: float  # recommended minimum score (NaN when the stage has no scores)
    keep_target: float
    questions: int  # in-domain questions with a relevant chunk among the candidates
    relevant_kept: float  # share of those whose best relevant chunk reaches the cutoff
    answer_set_relevant: float  # all in-domain questions: a relevant chunk in the top_k above cutoff
    answer_set_relevant_unthresholded: float  # same without any cutoff (the retrieval ceiling)
    in_domain_answered: float  # all in-domain questions: at least one chunk reaches the cutoff
    ood_questions: int
    ood_refused: float  # out-of-domain questions with no chunk reaching the cutoff (NaN: none given)
    separation_auc: float  # P(in-domain best relevant > out-of-domain best); NaN without OOD

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass
class StageScores:
    """The raw material of one stage's plot and numbers."""

    relevant: np.ndarray  # every relevant candidate's score (in-domain)
    irrelevant: np.ndarray  # every judged-irrelevant candidate's score (in-domain)
    best_relevant: np.ndarray  # per in-domain question with a relevant candidate
    ood_best: np.ndarray  # per out-of-domain question


def stage_scores(cands: CandidateSet, ood: CandidateSet | None, score: ScoreOf, depth: int) -> StageScores:
    rel, irr, best_rel = [], [], []
    for q in cands.queries:
        judged = cands.qrels.get(q.qid, {})
        values = [(c, _value(score, c)) for c in within_depth(q.chunks, depth)]
        mine = [v for c, v in values if judged.get(c.corpus_id, 0) > 0]
        rel += mine
        irr += [v for c, v in values if judged.get(c.corpus_id, 0) <= 0]
        if mine:
            best_rel.append(_best(mine))
    ood_best = [] if ood is None else [
        _best([_value(score, c) for c in within_depth(q.chunks, depth)]) for q in ood.queries
    ]

    def arr(xs: list[float]) -> np.ndarray:
        a = np.asarray(xs, dtype=np.float64)
        return a[~np.isnan(a)]

    return StageScores(arr(rel), arr(irr), arr(best_rel), np.asarray(ood_best, dtype=np.float64))


def recommend_cutoff(best_relevant: np.ndarray, keep: float) -> float:
    """The largest cutoff that keeps at least ``keep`` of ``best_relevant``."""
    if best_relevant.size == 0:
        return math.nan
    ordered = np.sort(best_relevant)
    droppable = int(math.floor((1.0 - keep) * len(ordered) + 1e-9))  # 1e-9: (1 - 0.9) * 100 is 9.999...
    return float(ordered[min(droppable, len(ordered) - 1)])


def _answer_set_has_relevant(
    cands: CandidateSet, score: ScoreOf, cutoff: float, depth: int, top_k: int
) -> tuple[float, float]:
    """(share of questions whose top_k above ``cutoff`` holds a relevant chunk, share answered)."""
    hits = answered = 0
    for q in cands.queries:
        judged = cands.qrels.get(q.qid, {})
        ordered = by_fused_score(within_depth(q.chunks, depth))
        if not math.isnan(cutoff):
            ordered = [c for c in ordered if _value(score, c) >= cutoff]
        answered += bool(ordered)
        hits += any(judged.get(c.corpus_id, 0) > 0 for c in ordered[:top_k])
    n = max(len(cands.queries), 1)
    return hits / n, answered / n


def calibrate_stage(
    stage: str,
    cands: CandidateSet,
    ood: CandidateSet | None,
    keep: float = 0.95,
    depth: int = 50,
    top_k: int = 5,
    cutoff: float | None = None,
) -> tuple[StageCalibration, StageScores]:
    """Numbers for one stage at the recommended cutoff (or at ``cutoff`` when given)."""
    score = STAGES[stage]
    sc = stage_scores(cands, ood, score, depth)
    t = recommend_cutoff(sc.best_relevant, keep) if cutoff is None else cutoff
    usable = not math.isnan(t)
    answer_set, answered = _answer_set_has_relevant(cands, score, t, depth, top_k) if usable else (math.nan, math.nan)
    ceiling, _ = _answer_set_has_relevant(cands, score, math.nan, depth, top_k)
    ood_best = sc.ood_best
    if ood is None or not usable:
        refused, separation = math.nan, math.nan
    else:
        refused = float(np.mean(~(ood_best >= t)))  # NaN best (no candidates) counts as refused
        separation = auc(sc.best_relevant, np.nan_to_num(ood_best, nan=-np.inf))
    kept = float(np.mean(sc.best_relevant >= t)) if usable and sc.best_relevant.size else math.nan
    return (
        StageCalibration(
            stage=stage,
            cutoff=t,
            keep_target=keep,
            questions=int(sc.best_relevant.size),
            relevant_kept=kept,
            answer_set_relevant=answer_set,
            answer_set_relevant_unthresholded=ceiling,
            in_domain_answered=answered,
            ood_questions=0 if ood is None else len(ood.queries),
            ood_refused=refused,
            separation_auc=separation,
        ),
        sc,
    )


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(tie) (the Mann-Whitney U statistic, normalised)."""
    if pos.size == 0 or neg.size == 0:
        return math.nan
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * tied).sum() / (pos.size * neg.size))


def calibrate(
    cands: CandidateSet,
    ood: CandidateSet | None,
    keep: float = 0.95,
    depth: int = 50,
    top_k: int = 5,
    stages: Sequence[str] | None = None,
) -> tuple[list[StageCalibration], dict[str, StageScores]]:
    """Every stage that has scores (``rerank`` only when a reranker ran)."""
    names = [s for s in (stages or STAGES) if s != "rerank" or cands.reranked]
    out, raw = [], {}
    for name in names:
        cal, sc = calibrate_stage(name, cands, ood, keep, depth, top_k)
        out.append(cal)
        raw[name] = sc
    return out, raw


def plot(
    dataset: str,
    results: Sequence[StageCalibration],
    raw: dict[str, StageScores],
    path: str | Path,
    ood_name: str = "out-of-domain",
) -> Path:
    """One panel per stage: relevant vs irrelevant candidates vs out-of-domain questions' best."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in servers and CI
    import matplotlib.pyplot as plt

    cols = 3
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, cal in zip(axes.flat, results):
        sc = raw[cal.stage]
        data = [sc.relevant, sc.irrelevant, sc.ood_best[~np.isnan(sc.ood_best)]]
        finite = np.concatenate([d for d in data if d.size]) if any(d.size for d in data) else np.zeros(1)
        lo, hi = np.percentile(finite, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 50)
        labels = ["relevant chunks", "irrelevant chunks", f"best chunk, {ood_name} questions"]
        colors = ["tab:green", "tab:gray", "tab:red"]
        for values, label, color in zip(data, labels, colors):
            if values.size:
                ax.hist(np.clip(values, lo, hi), bins=bins, density=True, alpha=0.45, label=label, color=color)
        if not math.isnan(cal.cutoff):
            ax.axvline(cal.cutoff, color="black", linestyle="--", linewidth=1)
        thresholdable = " (threshold option)" if cal.stage in THRESHOLDABLE else ""
        ax.set_title(f"{cal.stage}{thresholdable}", fontsize=10)
        ood = (
            "" if math.isnan(cal.ood_refused) else f", OOD refused {cal.ood_refused:.0%}, AUC {cal.separation_auc:.3f}"
        )
        ax.set_xlabel(f"cutoff {cal.cutoff:.4g}: keeps {cal.relevant_kept:.0%}{ood}", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    keep = results[0].keep_target if results else 0.95
    fig.suptitle(
        f"{dataset}: score distributions per stage; dashed = cutoff keeping {keep:.0%} of relevant"
        " (values beyond the 0.5/99.5 percentiles are drawn at the edges)",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
