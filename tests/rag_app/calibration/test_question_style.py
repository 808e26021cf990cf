"""Weighting probes to the style of the questions asked (rag_app.calibration.question_style), on
hand-made candidate sets: the arithmetic, not the quality (BENCHMARKS.md measures that)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from rag_app.calibration.probes import Probe, sentence_window, window_questions
from rag_app.calibration.question_style import probes_like_asked, style_weights
from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates
from rag_app.retrieval.results import best_keyword_coverage


def _question(qid: str, coverage: float) -> QueryCandidates:
    chunks = [Candidate(f"{qid}-a", "d", 1, 1, 0.9, 3.0, 1.0, bm25_coverage=coverage),
              Candidate(f"{qid}-b", "d", 2, 2, 0.8, 1.0, 0.5, bm25_coverage=coverage / 2)]
    return QueryCandidates(qid, chunks, 0.0)


def test_a_questions_style_is_its_best_keyword_coverage() -> None:
    assert best_keyword_coverage(_question("q", 0.42).chunks) == 0.42
    assert best_keyword_coverage([]) is None
    assert best_keyword_coverage([Candidate("c", "d", 1, None, 0.9, 0.0, 1.0)]) is None  # coverage unknown (NaN)


def test_style_weights_follow_the_asked_questions() -> None:
    pool = np.linspace(0.0, 1.0, 100)
    weights = style_weights(pool, asked=[0.9, 0.95, 0.85, 0.99])
    assert weights[pool < 0.8].sum() == 0 and weights[pool >= 0.8].sum() > 0
    flat = style_weights(pool, asked=pool)  # asked like the pool: every probe counts the same
    assert np.allclose(flat, 1.0)
    with pytest.raises(ValueError):
        style_weights(pool, asked=[])


def test_probes_like_extractive_questions_are_mostly_windows() -> None:
    rng = random.Random(0)
    sentences = CandidateSet("s", [_question(f"s{i}", rng.uniform(0.1, 0.35)) for i in range(100)])
    windows = CandidateSet("w", [_question(f"w{i}", rng.uniform(0.4, 0.7)) for i in range(100)])
    extractive = probes_like_asked(sentences, windows, [rng.uniform(0.45, 0.65) for _ in range(40)])
    paraphrase = probes_like_asked(sentences, windows, [rng.uniform(0.15, 0.3) for _ in range(40)])
    share = lambda s: np.mean([q.qid.startswith("w") for q in s.queries])  # noqa: E731
    assert share(extractive) > 0.9 and share(paraphrase) < 0.1
    again = probes_like_asked(sentences, windows, [rng.uniform(0.45, 0.65) for _ in range(40)], seed=1)
    assert len(again.queries) == len(extractive.queries)


def test_a_window_is_part_of_its_sentence_in_either_language() -> None:
    rng = random.Random(0)
    english = "Visitors must sign in at reception and wear a badge at all times."
    window = sentence_window(english, rng)
    assert window in english and 4 <= len(window.split()) < len(english.split())
    chinese = "入职满五年的正式员工每年有十天带薪年假。"
    window = sentence_window(chinese, rng)
    assert window in chinese and 6 <= len(window) < len(chinese)
    probes = [Probe("p0", english, None, "rest"), Probe("p1", chinese, None, "rest")]  # type: ignore[arg-type]
    assert window_questions(probes) == window_questions(probes)  # seeded


def test_the_sentence_probes_own_cutoff_decides_which_asked_questions_count() -> None:
    """A cutoff weighted to asked questions must not choose its own askers: a question it refuses
    still counts when the unweighted cutoff would have answered it."""
    from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration

    weighted = KnowledgeBaseCalibration(
        weights={"bm25_coverage": 1.0}, min_value=0.6, computed_at="2026-12-05T00:00:00+00:00", seconds=1.0,
        chunks=10, probes=30, probe_kind="test", offtopic=20, keep_target=0.95, probes_answered=0.95,
        offtopic_refused=0.9, holes_refused=0.5, auc=0.9, asked_questions=40,
        probe_weights={"bm25_coverage": 1.0}, probe_min_value=0.3,
    )
    question = _question("q", 0.45).chunks
    assert weighted.relevance(question[0]) < weighted.min_value  # refused by the cutoff in use
    assert weighted.on_topic(question)  # yet on topic for the probes' own cutoff
    assert not weighted.on_topic(_question("off", 0.2).chunks)
    unweighted = weighted.model_copy(update={"probe_weights": None, "probe_min_value": None})
    assert not unweighted.on_topic(question)  # without weighting: the cutoff in use decides
