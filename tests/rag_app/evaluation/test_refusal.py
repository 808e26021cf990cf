"""Refusal measured with labels: holes, off-topic questions, the answer set (hand-made candidates)."""
from __future__ import annotations

import pytest

from rag_app.config import FusionSettings
from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates
from rag_app.evaluation.refusal import CutoffRule, holes_of, refusal, reranked
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration


def _c(cid: str, doc: str, cos: float, dr: int | None, br: int | None, cov: float = 0.5) -> Candidate:
    return Candidate(cid, doc, dr, br, cos, cov * 10, 0.0, cos - 0.8, 1.0, None, cov)


def _cands() -> CandidateSet:
    q1 = [_c("a", "A", 0.95, 1, 1), _c("b", "B", 0.85, 2, None), _c("x", "X", 0.84, 3, 2)]
    q2 = [_c("c", "C", 0.93, 1, 2), _c("d", "D", 0.80, 2, 1)]
    return CandidateSet("s", [QueryCandidates("q1", q1, 0), QueryCandidates("q2", q2, 0)],
                        {"q1": {"A": 1}, "q2": {"C": 1}}, depth=100)


def test_reranked_recomputes_leg_ranks_after_dropping_and_cuts_at_depth() -> None:
    q1 = _cands().queries[0].chunks
    out = reranked([c for c in q1 if c.corpus_id != "A"], depth=1)
    assert [(c.chunk_id, c.dense_rank, c.bm25_rank) for c in out] == [("b", 1, None), ("x", None, 1)]


def test_holes_drop_the_judged_documents_of_a_seeded_share() -> None:
    holes = holes_of(_cands(), 1.0, depth=50)
    assert {q.qid for q in holes.queries} == {"q1", "q2"}
    assert all(c.corpus_id not in ("A", "C") for q in holes.queries for c in q.chunks)
    assert len(holes_of(_cands(), 0.5, depth=50, seed=1).queries) == 1


def test_refusal_counts_answered_answer_set_offtopic_and_holes() -> None:
    cands = _cands()
    off = CandidateSet("o", [QueryCandidates("o1", [_c("y", "Y", 0.86, 1, 1)], 0),
                             QueryCandidates("o2", [_c("z", "Z", 0.80, 1, None)], 0)])
    rule = CutoffRule.fixed("dense_score", 0.9, FusionSettings())
    r = refusal(rule, cands, off, holes_of(cands, 1.0, depth=50), depth=50, top_k=5)
    assert (r.questions, r.answered, r.answer_set_relevant) == (2, 1.0, 1.0)
    assert (r.offtopic_refused, r.holes_refused, r.holes) == (1.0, 1.0, 2)
    assert r.auc_offtopic == 1.0 and r.auc_holes == 1.0


def test_the_calibrated_rule_reads_the_stored_weights_and_fusion() -> None:
    cal = KnowledgeBaseCalibration(
        weights={"dense_score": 1.0, "bm25_coverage": 1.0}, min_value=1.4, fusion=FusionSettings(bm25_weight=0.5),
        computed_at="2026-12-03T00:00:00+00:00", seconds=1.0, chunks=10, probes=30, probe_kind="test", offtopic=10,
        keep_target=0.95, probes_answered=0.95, offtopic_refused=0.9, holes_refused=0.5, auc=0.9,
    )
    rule = CutoffRule.calibrated(cal, FusionSettings())
    assert rule.fusion.bm25_weight == 0.5 and rule.min_value == 1.4
    assert rule.value(_c("a", "A", 0.95, 1, 1, cov=0.5)) == pytest.approx(1.45)
    assert CutoffRule.calibrated(cal, FusionSettings(per_knowledge_base=False)).fusion.bm25_weight == 1.0
