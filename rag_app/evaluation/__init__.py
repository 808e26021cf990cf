"""Offline evaluation of retrieval quality (BEIR-format sets, trec_eval-compatible metrics)."""
from rag_app.evaluation.metrics import evaluate_run, mrr_at_k, ndcg_at_k, recall_at_k

__all__ = ["evaluate_run", "mrr_at_k", "ndcg_at_k", "recall_at_k"]
