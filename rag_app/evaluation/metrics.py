"""Ranking metrics over TREC-style runs and qrels (nDCG@k, Recall@k, MRR@k).

Conventions, chosen to match trec_eval / pytrec_eval (and ranx's ``ndcg``, ``recall``, ``mrr``):

* ``run[qid][docid] = score``: higher is better; ties are broken by docid, descending (trec_eval's
  order), so results do not depend on dict insertion order.
* ``qrels[qid][docid] = grade``: a document is relevant when its grade is > 0.
* nDCG uses gain = grade (Järvelin & Kekäläinen, as trec_eval's ``ndcg_cut``), not 2^grade - 1,
  with discount 1 / log2(rank + 1); the ideal DCG comes from the qrels' own grades.
* The mean is taken over the queries of ``qrels`` that have at least one relevant document.
  Such a query absent from the run scores 0 (trec_eval ``-c``, ranx ``make_comparable=True``):
  silently dropping it would reward a system for returning nothing. Queries of the run without
  qrels are ignored.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def ranked_docs(scores: Mapping[str, float], k: int | None = None) -> list[str]:
    """Doc ids best first (score descending, then docid descending), cut at ``k``."""
    # Two stable sorts: secondary key first. Docid descending on ties mirrors trec_eval.
    order = sorted(scores, reverse=True)
    order.sort(key=lambda d: scores[d], reverse=True)
    return order if k is None else order[:k]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_query(ranking: list[str], rels: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list (already ordered) against one query's judgments."""
    _check_k(k)
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = _dcg([float(g) for g in ideal])
    if idcg == 0:
        return 0.0
    return _dcg([float(max(rels.get(d, 0), 0)) for d in ranking[:k]]) / idcg


def recall_query(ranking: list[str], rels: Mapping[str, int], k: int) -> float:
    _check_k(k)
    relevant = {d for d, g in rels.items() if g > 0}
    if not relevant:
        return 0.0
    return sum(1 for d in ranking[:k] if d in relevant) / len(relevant)


def mrr_query(ranking: list[str], rels: Mapping[str, int], k: int) -> float:
    _check_k(k)
    for i, d in enumerate(ranking[:k], start=1):
        if rels.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


PerQuery = Callable[[list[str], Mapping[str, int], int], float]


def per_query(metric: PerQuery, run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query values of ``metric`` over the judged queries (those with a relevant document)."""
    out: dict[str, float] = {}
    for qid, rels in qrels.items():
        if not any(g > 0 for g in rels.values()):
            continue  # nothing to find: undefined, skipped (as trec_eval)
        out[qid] = metric(ranked_docs(run.get(qid, {}), k), rels, k)
    return out


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def ndcg_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean graded nDCG@k (gain = grade, log2 discount, ideal from the qrels)."""
    return _mean(per_query(ndcg_query, run, qrels, k))


def recall_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean fraction of a query's relevant documents found in its top k."""
    return _mean(per_query(recall_query, run, qrels, k))


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> float:
    """Mean reciprocal rank of the first relevant document within the top k (0 if none)."""
    return _mean(per_query(mrr_query, run, qrels, k))


def evaluate_run(
    run: Run, qrels: Qrels, k_values: tuple[int, ...] = (10,), recall_extra: tuple[int, ...] = (100,), mrr_k: int = 10
) -> dict[str, float]:
    """The benchmark's metric set: nDCG@k and Recall@k for each k, Recall at ``recall_extra``, MRR@mrr_k."""
    out: dict[str, float] = {}
    for k in k_values:
        out[f"ndcg@{k}"] = ndcg_at_k(run, qrels, k)
        out[f"recall@{k}"] = recall_at_k(run, qrels, k)
    for k in recall_extra:
        out.setdefault(f"recall@{k}", recall_at_k(run, qrels, k))
    out[f"mrr@{mrr_k}"] = mrr_at_k(run, qrels, mrr_k)
    return out
