"""Choosing the relevance score and its cutoff from probe, hole and off-topic candidates (hand-made)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rag_app.calibration.relevance import Features, choose_score
from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates


def _set(name: str, rows: list[list[tuple[float, float, float]]]) -> CandidateSet:
    """Each question's candidates as (cosine, dense_z, bm25_coverage); dense_margin = cosine - 0.8."""
    out = CandidateSet(name, depth=50)
    for i, chunks in enumerate(rows):
        cands = [
            Candidate(f"{name}{i}-{j}", f"{name}{i}-{j}", j + 1, j + 1, cos, 1.0, 0.0, cos - 0.8, z, None, cov)
            for j, (cos, z, cov) in enumerate(chunks)
        ]
        out.queries.append(QueryCandidates(f"{name}{i}", cands, 0.0))
    return out


def test_features_take_each_questions_best_weighted_candidate() -> None:
    f = Features.of(_set("p", [[(0.9, 1.0, 0.1), (0.8, 2.0, 0.9)], []]))
    best = f.best(np.array([1.0, 0.0, 0.0, 0.0]))
    assert best[0] == pytest.approx(0.9) and best[1] == -math.inf  # no candidates: refused
    assert f.best(np.array([0.0, 0.0, 0.0, 1.0]))[0] == pytest.approx(0.9)


def test_the_score_that_separates_wins_and_its_cutoff_keeps_the_probes() -> None:
    rng = np.random.default_rng(0)
    # Cosine is useless here (same distribution everywhere); BM25 coverage separates.
    def rows(n: int, cov_mean: float) -> list[list[tuple[float, float, float]]]:
        return [[(0.85 + rng.normal(0, 0.02), rng.normal(2, 0.5), float(np.clip(rng.normal(cov_mean, 0.05), 0, 1)))]
                for _ in range(n)]

    probes, holes, off = _set("p", rows(200, 0.7)), _set("h", rows(100, 0.3)), _set("o", rows(100, 0.2))
    best, tried = choose_score(probes, holes, off, keep=0.9)
    assert len(tried) > 4
    assert best.weights.keys() >= {"bm25_coverage"}
    assert best.weights.get("bm25_coverage", 0) > 5 * max(abs(best.weights.get("dense_score", 0)), 1e-9) or len(best.weights) == 1
    assert best.probes_answered >= 0.9
    assert best.offtopic_refused > 0.95 and best.holes_refused > 0.9 and best.auc > 0.95


def test_a_score_missing_for_some_probe_is_not_offered() -> None:
    probes = _set("p", [[(0.9, math.nan, 0.5)], [(0.8, 1.0, 0.4)], [(0.85, 2.0, 0.6)]])
    _, tried = choose_score(probes, None, _set("o", [[(0.7, 0.0, 0.1)]]), keep=0.9)
    assert all("dense_z" not in c.weights for c in tried)


def test_no_candidates_at_all_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose_score(_set("p", [[], []]), None, None, keep=0.9)
