"""Which score, or pair of scores, says "the knowledge base holds this" best, and its cutoff.

A question is answered when one of its candidates reaches the cutoff, so each question's value
is its best candidate's. The cutoff keeps the chosen share of in-domain probes answered; among
the candidate scores (each of the dense scores alone, BM25 coverage alone, or a dense score and
BM25 coverage mixed at a few angles) the one refusing the most off-topic questions and holes at
that cutoff wins, the separation (AUC) breaking ties.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rag_app.evaluation.beir_eval import CandidateSet
from rag_app.evaluation.calibration import auc, recommend_cutoff
from rag_app.retrieval.kb_calibration import RELEVANCE_FEATURES

DENSE = ("dense_score", "dense_margin", "dense_z")
KEYWORD = "bm25_coverage"
ANGLES = (15, 30, 45, 60, 75)  # degrees from the dense score towards BM25 coverage


@dataclass(frozen=True)
class Features:
    """Every candidate's scores of one question set, rows grouped by question."""

    values: np.ndarray  # (candidates, len(RELEVANCE_FEATURES))
    question: np.ndarray  # (candidates,) index of the row's question
    questions: int

    @classmethod
    def of(cls, cands: CandidateSet) -> Features:
        rows, owner = [], []
        for i, q in enumerate(cands.queries):
            for c in q.chunks:
                rows.append([_finite(getattr(c, f)) for f in RELEVANCE_FEATURES])
                owner.append(i)
        values = np.asarray(rows, dtype=np.float64).reshape(-1, len(RELEVANCE_FEATURES))
        return cls(values, np.asarray(owner, dtype=np.int64), len(cands.queries))

    def best(self, weights: np.ndarray) -> np.ndarray:
        """Each question's best weighted score; -inf for a question without candidates (refused)."""
        out = np.full(self.questions, -np.inf)
        used = weights != 0  # an unused score may be NaN (dense_z on a tiny corpus): 0 * NaN is NaN
        if self.values.size:
            # fmax: a candidate missing a used score (NaN) never counts, as in the threshold stage.
            np.fmax.at(out, self.question, self.values[:, used] @ weights[used])
        return out


def _finite(v: float | None) -> float:
    return math.nan if v is None else float(v)


@dataclass(frozen=True)
class ScoreChoice:
    weights: dict[str, float]
    min_value: float
    probes_answered: float
    offtopic_refused: float
    holes_refused: float
    auc_offtopic: float
    auc_holes: float

    @property
    def refused(self) -> float:
        """The choice criterion: off-topic and holes refusal, equally weighted (NaN parts left out)."""
        parts = [v for v in (self.offtopic_refused, self.holes_refused) if not math.isnan(v)]
        return sum(parts) / len(parts) if parts else 0.0

    @property
    def auc(self) -> float:
        parts = [v for v in (self.auc_offtopic, self.auc_holes) if not math.isnan(v)]
        return sum(parts) / len(parts) if parts else math.nan


def candidate_weights(probes: Features) -> list[np.ndarray]:
    """Single scores, then each dense score mixed with BM25 coverage; each score divided by its
    spread over the probes' best values so that an angle means the same on every knowledge base.
    A score missing (NaN) for some probe, or constant, is left out."""
    names = list(RELEVANCE_FEATURES)
    scale: dict[str, float] = {}
    for j, name in enumerate(names):
        unit = np.zeros(len(names))
        unit[j] = 1.0
        best = probes.best(unit)
        if np.isnan(probes.values[:, j]).any() or not np.isfinite(best).all():
            continue
        spread = float(np.std(best))
        if spread > 1e-9:
            scale[name] = spread

    def vec(mix: dict[str, float]) -> np.ndarray:
        return np.array([mix.get(n, 0.0) / scale[n] if n in mix else 0.0 for n in names])

    options = [vec({name: 1.0}) for name in names if name in scale]
    if KEYWORD in scale:
        for dense in DENSE:
            if dense in scale:
                for a in ANGLES:
                    r = math.radians(a)
                    options.append(vec({dense: math.cos(r), KEYWORD: math.sin(r)}))
    return options


def _refused(best: np.ndarray, cutoff: float) -> float:
    return float(np.mean(~(best >= cutoff))) if best.size else math.nan


def score_at(
    weights: np.ndarray, probes: Features, holes: Features | None, offtopic: Features | None, keep: float,
    cutoff: float | None = None,
) -> ScoreChoice:
    """One weighting's cutoff (keeping ``keep`` of the probes, or the given one) and its rates."""
    pos = probes.best(weights)
    t = recommend_cutoff(pos[np.isfinite(pos)], keep) if cutoff is None else cutoff
    neg_off = offtopic.best(weights) if offtopic is not None else np.zeros(0)
    neg_holes = holes.best(weights) if holes is not None else np.zeros(0)
    return ScoreChoice(
        weights={n: float(w) for n, w in zip(RELEVANCE_FEATURES, weights) if w != 0},
        min_value=t,
        probes_answered=float(np.mean(pos >= t)) if pos.size else math.nan,
        offtopic_refused=_refused(neg_off, t),
        holes_refused=_refused(neg_holes, t),
        auc_offtopic=auc(pos, neg_off),
        auc_holes=auc(pos, neg_holes),
    )


def choose_score(
    probes: CandidateSet, holes: CandidateSet | None, offtopic: CandidateSet | None, keep: float
) -> tuple[ScoreChoice, list[ScoreChoice]]:
    """The best weighting and every one tried (for the report)."""
    p = Features.of(probes)
    h = Features.of(holes) if holes is not None else None
    o = Features.of(offtopic) if offtopic is not None else None
    tried = [score_at(w, p, h, o, keep) for w in candidate_weights(p)]
    if not tried:
        raise ValueError("no usable score: the probe questions have no candidates")
    best = max(tried, key=lambda c: (round(c.refused, 4), _nan_low(c.auc)))
    return best, tried


def _nan_low(v: float) -> float:
    return -1.0 if math.isnan(v) else v
