"""Ranking metrics: hand-worked cases, trec_eval conventions, and oracle checks against trec_eval
(pytrec_eval) and ranx."""
from __future__ import annotations

import math
import random

import pytest

from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates, fused_order, leg_order, leg_run
from rag_app.evaluation.metrics import evaluate_run, mrr_at_k, ndcg_at_k, ranked_docs, recall_at_k

L2 = math.log2


# --------------------------------------------------------------------------- hand-computed cases


def test_ndcg_binary_hand_computed() -> None:
    # Relevant d1, d3; ranking d1 d2 d3: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    run = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    qrels = {"q": {"d1": 1, "d3": 1}}
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(1.5 / (1 + 1 / L2(3)))
    # @1: d1 is relevant and the ideal top-1 is 1 as well.
    assert ndcg_at_k(run, qrels, 1) == pytest.approx(1.0)
    # @2: DCG = 1; IDCG = 1 + 1/log2(3).
    assert ndcg_at_k(run, qrels, 2) == pytest.approx(1 / (1 + 1 / L2(3)))


def test_ndcg_graded_uses_linear_gain() -> None:
    # Grades d1=1, d2=2, d3=0; ranking d1 d2 d3.
    # gain = grade (trec_eval), not 2^grade - 1: DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3).
    run = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7}}
    qrels = {"q": {"d1": 1, "d2": 2, "d3": 0}}
    expected = (1 + 2 / L2(3)) / (2 + 1 / L2(3))
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(expected)
    exponential = (1 + 3 / L2(3)) / (3 + 1 / L2(3))
    assert abs(expected - exponential) > 1e-3  # the two gain conventions really differ here


def test_ndcg_ideal_comes_from_qrels_not_the_run() -> None:
    # Three relevant docs, only one retrieved (at rank 1): IDCG counts all three.
    run = {"q": {"a": 1.0, "x": 0.5}}
    qrels = {"q": {"a": 1, "b": 1, "c": 1}}
    idcg = 1 + 1 / L2(3) + 1 / L2(4)
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(1 / idcg)
    # ... but cut at k: with k=1 the ideal list holds one document.
    assert ndcg_at_k(run, qrels, 1) == pytest.approx(1.0)


def test_recall_and_mrr_hand_computed() -> None:
    run = {
        "q1": {"a": 5, "b": 4, "c": 3, "d": 2},  # relevant c (rank 3), e (absent)
        "q2": {"x": 2, "y": 1},  # relevant y (rank 2)
    }
    qrels = {"q1": {"c": 1, "e": 2}, "q2": {"y": 1}}
    assert recall_at_k(run, qrels, 2) == pytest.approx((0 / 2 + 1 / 1) / 2)
    assert recall_at_k(run, qrels, 3) == pytest.approx((1 / 2 + 1) / 2)
    assert mrr_at_k(run, qrels, 10) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert mrr_at_k(run, qrels, 2) == pytest.approx((0 + 1 / 2) / 2)  # rank 3 is past the cut


def test_query_sets_skipping_and_missing_runs() -> None:
    run = {
        "q1": {"a": 1.0},
        "q_unjudged": {"z": 1.0},  # no qrels: ignored
        "q_zero": {"n": 1.0},  # judged but nothing relevant: skipped
    }
    qrels = {"q1": {"a": 1}, "q_zero": {"n": 0}, "q_missing": {"m": 1}}  # q_missing: not in run
    # Mean over q1 (1.0) and q_missing (0.0): a query the system returned nothing for counts as 0.
    assert ndcg_at_k(run, qrels, 10) == pytest.approx(0.5)
    assert recall_at_k(run, qrels, 10) == pytest.approx(0.5)
    assert mrr_at_k(run, qrels, 10) == pytest.approx(0.5)
    assert ndcg_at_k({}, {}, 10) == 0.0


def test_ties_broken_by_docid_descending_like_trec_eval() -> None:
    assert ranked_docs({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]
    run = {"q": {"a": 1.0, "b": 1.0}}
    assert mrr_at_k(run, {"q": {"a": 1}}, 10) == pytest.approx(0.5)  # b is ranked first


def test_invalid_k_rejected() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k({"q": {"a": 1.0}}, {"q": {"a": 1}}, 0)


def test_evaluate_run_keys() -> None:
    out = evaluate_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, k_values=(10,), recall_extra=(100,))
    assert set(out) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
    assert all(v == pytest.approx(1.0) for v in out.values())


# --------------------------------------------------------------------------- oracle


def _hand_oracle_ndcg(order: list[str], grades: dict[str, int], k: int) -> float:
    """Textbook nDCG written independently of the module: explicit positions, no shared helpers."""
    dcg = 0.0
    for position in range(1, min(k, len(order)) + 1):
        dcg += max(grades.get(order[position - 1], 0), 0) / math.log(position + 1, 2)
    best = sorted([g for g in grades.values() if g > 0], reverse=True)
    idcg = sum(best[p - 1] / math.log(p + 1, 2) for p in range(1, min(k, len(best)) + 1))
    return dcg / idcg


def _random_case(rng: random.Random, n_queries: int = 40) -> tuple[dict, dict]:
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in range(n_queries):
        docs = [f"d{i}" for i in range(rng.randint(5, 60))]
        qid = f"q{q}"
        # Continuous scores: no ties, so every implementation sees the same order.
        run[qid] = {d: rng.random() for d in rng.sample(docs, rng.randint(1, len(docs)))}
        judged = rng.sample(docs, rng.randint(1, min(8, len(docs))))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        qrels[qid][judged[0]] = max(qrels[qid][judged[0]], 1)  # at least one relevant
    return run, qrels


def test_hand_oracle_on_random_runs() -> None:
    rng = random.Random(7)
    for _ in range(5):
        run, qrels = _random_case(rng)
        for k in (1, 3, 10, 100):
            expected = sum(
                _hand_oracle_ndcg(sorted(run[q], key=lambda d: -run[q][d]), qrels[q], k) for q in qrels
            ) / len(qrels)
            assert ndcg_at_k(run, qrels, k) == pytest.approx(expected, abs=1e-12)


def test_against_pytrec_eval_on_random_runs() -> None:
    """trec_eval itself (via pytrec_eval, a test extra) as the reference implementation."""
    import pytrec_eval

    rng = random.Random(99)
    for _ in range(5):
        run, qrels = _random_case(rng)
        for qid in list(run)[:3]:  # queries the system returned nothing for
            del run[qid]
        measures = {"ndcg_cut.1,5,10,100", "recall.1,5,10,100", "recip_rank"}
        per_q = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
        n = len(qrels)  # trec_eval -c: queries missing from the run count as 0

        def mean(measure: str, per_q: dict = per_q, n: int = n) -> float:
            return sum(v[measure] for v in per_q.values()) / n

        for k in (1, 5, 10, 100):
            assert ndcg_at_k(run, qrels, k) == pytest.approx(mean(f"ndcg_cut_{k}"), abs=1e-9)
            assert recall_at_k(run, qrels, k) == pytest.approx(mean(f"recall_{k}"), abs=1e-9)
        # trec_eval's recip_rank has no cutoff: compare MRR with a cutoff beyond every run's length.
        assert mrr_at_k(run, qrels, 1000) == pytest.approx(mean("recip_rank"), abs=1e-9)


def test_against_ranx_on_random_runs() -> None:
    ranx = pytest.importorskip("ranx")  # test extra; pinned ranx==0.3.21
    rng = random.Random(1234)
    for _ in range(5):
        run, qrels = _random_case(rng)
        # Drop a few queries from the run: both sides must count them as 0 (make_comparable).
        for qid in list(run)[:3]:
            del run[qid]
        metrics = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr") for k in (1, 5, 10, 100)]
        expected = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), metrics, make_comparable=True)
        ours = {
            f"{name}@{k}": fn(run, qrels, k)
            for name, fn in (("ndcg", ndcg_at_k), ("recall", recall_at_k), ("mrr", mrr_at_k))
            for k in (1, 5, 10, 100)
        }
        for m in metrics:
            assert ours[m] == pytest.approx(float(expected[m]), abs=1e-9), m


# --------------------------------------------------------------------------- leg rankings


def _cand(cid: str, doc: str, dr: int | None, br: int | None, ds: float, bs: float, fs: float = 0.0) -> Candidate:
    return Candidate(cid, doc, dr, br, ds, bs, fs)


def test_leg_order_puts_unreturned_after_returned() -> None:
    chunks = [
        _cand("c1", "A", 2, None, 0.80, 1.0),
        _cand("c2", "B", None, 1, 0.95, 9.0),  # found by BM25 only: ranks after dense's own hits
        _cand("c3", "A", 1, 2, 0.90, 5.0),
        _cand("c4", "C", None, 3, 0.50, 2.0),
    ]
    assert [c.chunk_id for c in leg_order(chunks, "dense")] == ["c3", "c1", "c2", "c4"]
    assert [c.chunk_id for c in leg_order(chunks, "bm25")] == ["c2", "c3", "c4", "c1"]


def test_leg_run_keeps_each_documents_best_rank() -> None:
    chunks = [  # fused (hybrid) order as the retriever returned it
        _cand("c3", "A", 1, 2, 0.90, 5.0),
        _cand("c2", "B", None, 1, 0.95, 9.0),
        _cand("c1", "A", 2, None, 0.80, 1.0),
    ]
    cands = CandidateSet("t", [QueryCandidates("q", chunks, 1.0)], {"q": {"B": 1}})
    for leg, order in (("dense", ["A", "B"]), ("bm25", ["B", "A"]), ("hybrid", ["A", "B"])):
        run = leg_run(cands, leg)["q"]
        assert ranked_docs(run) == order, leg
    # B is relevant: first for BM25, second for dense and hybrid.
    assert mrr_at_k(leg_run(cands, "bm25"), cands.qrels, 10) == 1.0
    assert mrr_at_k(leg_run(cands, "dense"), cands.qrels, 10) == 0.5


def test_offline_rrf_matches_hybrid_formula() -> None:
    chunks = [
        _cand("a", "A", 1, 3, 0.9, 1.0),
        _cand("b", "B", 2, 1, 0.8, 3.0),
        _cand("c", "C", None, 2, 0.1, 2.0),
    ]
    # Equal weights, k=60: b = 1/62 + 1/61 > a = 1/61 + 1/63 > c = 1/62.
    assert [c.chunk_id for c in fused_order(chunks, "rrf")] == ["b", "a", "c"]
    # BM25 at weight 0: dense order, then the BM25-only chunk (no score).
    assert [c.chunk_id for c in fused_order(chunks, "rrf", bm25_weight=0.0)] == ["a", "b", "c"]


def test_paired_bootstrap_interval() -> None:
    from rag_app.evaluation.beir_eval import paired_bootstrap

    a = {f"q{i}": 1.0 for i in range(50)}
    b = {f"q{i}": (0.0 if i < 10 else 1.0) for i in range(50)}
    mean, lo, hi = paired_bootstrap(a, b)
    assert mean == pytest.approx(0.2)
    assert 0.0 < lo <= mean <= hi < 0.5  # a clear, one-sided gap: the interval excludes zero
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
