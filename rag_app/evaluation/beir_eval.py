"""Retrieval quality of a knowledge base on a BEIR-format folder: dense, BM25 and hybrid legs.

Each query goes once through ``kb.retriever.run`` with the threshold off and every candidate kept;
the three rankings are derived from that one candidate set, so the legs are compared on identical
retrieval work. Per-query candidates (both legs' ranks and scores) are kept so that other fusions
can be recomputed offline with ``rag_app.retrieval.fusion`` without re-running retrieval.

Over 300 lines on purpose: the candidate record, its collection and the rankings derived from it
share one cache format (``CandidateSet.save``/``load``), and a change to one must change the others.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ingest.beir import corpus_id_of, load_qrels, load_queries
from ingest.files import atomic_write_text
from rag_app.config import ThresholdSettings
from rag_app.evaluation.metrics import evaluate_run, ndcg_query, per_query, recall_at_k
from rag_app.retrieval.fusion import reciprocal_rank_fusion, weighted_score_sum

if TYPE_CHECKING:
    from rag_app.retrieval.protocols import SearchableKnowledgeBase

log = logging.getLogger(__name__)

LEGS = ("dense", "bm25", "hybrid")
RERANK_LEG = "hybrid+rerank"
DEFAULT_DEPTH = 100  # per-leg candidates: enough for Recall@100 at document level
_CACHE_VERSION = 3  # 3: bm25_coverage


@dataclass(frozen=True)
class Candidate:
    """One retrieved chunk, reduced to what ranking and calibration need (no text: keeps 1,000
    queries with 200 candidates each small)."""

    chunk_id: str
    corpus_id: str
    dense_rank: int | None
    bm25_rank: int | None
    dense_score: float  # NaN when the vector could not be fetched
    bm25_score: float
    fused_score: float
    dense_margin: float = math.nan
    dense_z: float = math.nan
    rerank_score: float | None = None
    bm25_coverage: float = math.nan  # bm25_score / the query's highest possible BM25 score


@dataclass
class QueryCandidates:
    qid: str
    chunks: list[Candidate]  # in the retriever's final order (fused, then reranked if configured)
    latency_ms: float


@dataclass
class CandidateSet:
    dataset: str
    queries: list[QueryCandidates] = field(default_factory=list)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # empty for out-of-domain queries
    depth: int = DEFAULT_DEPTH

    @property
    def latencies_ms(self) -> list[float]:
        return [q.latency_ms for q in self.queries]

    @property
    def reranked(self) -> bool:
        return any(c.rerank_score is not None for q in self.queries for c in q.chunks)

    def save(self, path: str | Path) -> None:
        """JSON (never pickle): candidates are costly to collect and cheap to re-analyse."""
        data = {
            "version": _CACHE_VERSION,
            "dataset": self.dataset,
            "depth": self.depth,
            "qrels": self.qrels,
            "queries": [
                {"qid": q.qid, "ms": q.latency_ms, "chunks": [_candidate_row(c) for c in q.chunks]}
                for q in self.queries
            ],
        }
        atomic_write_text(path, json.dumps(data, allow_nan=True))

    @classmethod
    def load(cls, path: str | Path) -> CandidateSet:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != _CACHE_VERSION:
            raise ValueError(f"{path}: candidate cache version {data.get('version')}, expected {_CACHE_VERSION}")
        queries = [
            QueryCandidates(q["qid"], [Candidate(*row) for row in q["chunks"]], q["ms"]) for q in data["queries"]
        ]
        return cls(data["dataset"], queries, data["qrels"], data["depth"])


def _candidate_row(c: Candidate) -> list[object]:
    return [getattr(c, f.name) for f in fields(Candidate)]


# ------------------------------------------------------------------------------------ collection


@contextmanager
def _evaluation_settings(kb: SearchableKnowledgeBase, depth: int) -> Iterator[None]:
    """Temporarily: no threshold (ranking evaluation needs every candidate), ``depth`` per leg, the
    configured fusion (a knowledge base's calibrated one is replayed offline from the candidates,
    and might switch a leg off)."""
    retriever = kb.retriever
    assert retriever is not None, "call kb.warm_up() first"
    original = retriever.settings
    retriever.settings = original.model_copy(
        update={
            "dense_top_k": depth,
            "bm25_top_k": depth,
            "threshold": ThresholdSettings(score="none"),
            "fusion": original.fusion.model_copy(update={"per_knowledge_base": False}),
        }
    )
    try:
        yield
    finally:
        retriever.settings = original


def collect_candidates(
    kb: SearchableKnowledgeBase,
    dataset_dir: str | Path,
    max_queries: int | None = None,
    depth: int = DEFAULT_DEPTH,
    split: str = "dev",
    progress: Callable[[int, int], None] | None = None,
    by_chunk: bool = False,
) -> CandidateSet:
    """Run every judged query once and keep all its candidates with both legs' evidence.
    ``by_chunk``: the qrels name chunk ids of the knowledge base (judged questions exported from
    feedback), not BEIR corpus ids indexed from the folder's corpus."""
    folder = Path(dataset_dir)
    queries = load_queries(folder)
    qrels = load_qrels(folder, split)
    # Only judged queries with a text, in qrels file order (deterministic --max-queries prefix).
    qids = [q for q in qrels if q in queries and any(g > 0 for g in qrels[q].values())]
    missing = sum(1 for q in qrels if q not in queries)
    if missing:
        log.warning("%s: %d judged queries have no text in queries.jsonl; skipped", folder.name, missing)
    if max_queries is not None:
        qids = qids[:max_queries]
    out = collect_for_queries(kb, {q: queries[q] for q in qids}, depth, progress, by_chunk=by_chunk)
    out.dataset = folder.resolve().name
    out.qrels = {q: dict(qrels[q]) for q in qids}
    return out


def collect_for_queries(
    kb: SearchableKnowledgeBase,
    queries: Mapping[str, str],
    depth: int = DEFAULT_DEPTH,
    progress: Callable[[int, int], None] | None = None,
    by_chunk: bool = False,
) -> CandidateSet:
    """Candidates for arbitrary query texts (e.g. another set's questions, to measure refusal)."""
    out = CandidateSet(dataset="", depth=depth)
    fusion = kb.settings.retrieval.fusion
    if fusion.dense_weight == 0 or fusion.bm25_weight == 0:
        log.warning("a fusion weight is 0: that leg is not searched and its ranking will be empty")
    with _evaluation_settings(kb, depth):
        retriever = kb.retriever
        assert retriever is not None
        # top_k = both legs' depth: keep *every* candidate, so the single-leg rankings are not cut
        # by the fused order before they are rebuilt.
        top_k = 2 * depth
        items = list(queries.items())
        if items:
            retriever.run(items[0][1], top_k=top_k)  # untimed: first-call calibration, caches
        for i, (qid, text) in enumerate(items, start=1):
            t0 = time.perf_counter()
            result = retriever.run(text, top_k=top_k)
            latency = (time.perf_counter() - t0) * 1000
            chunks = []
            for c in result.chunks:
                cid = c.chunk_id if by_chunk else corpus_id_of(c.source)
                if cid is None:
                    continue  # a non-BEIR document sharing the knowledge base
                chunks.append(
                    Candidate(
                        c.chunk_id, cid, c.dense_rank, c.bm25_rank, c.dense_score, c.bm25_score, c.fused_score,
                        c.dense_margin, c.dense_z, c.rerank_score, c.bm25_coverage,
                    )
                )
            out.queries.append(QueryCandidates(qid, chunks, latency))
            if progress:
                progress(i, len(items))
    return out


# ------------------------------------------------------------------------------------ rankings


def _leg_rank(c: Candidate, leg: Literal["dense", "bm25"]) -> int | None:
    return c.dense_rank if leg == "dense" else c.bm25_rank


def returned_by(chunks: list[Candidate], leg: Literal["dense", "bm25"]) -> list[Candidate]:
    """The chunks one leg returned, in its rank order."""
    ranked = [(rank, c) for c in chunks if (rank := _leg_rank(c, leg)) is not None]
    return [c for _, c in sorted(ranked, key=lambda pair: pair[0])]


def leg_order(chunks: list[Candidate], leg: Literal["dense", "bm25"]) -> list[Candidate]:
    """Chunks in one leg's order: its returned ones by rank, then the rest (found only by the other
    leg) by that leg's filled-in score — they rank after, since the leg did not return them."""

    def score(c: Candidate) -> float:
        s = c.dense_score if leg == "dense" else c.bm25_score
        return -math.inf if math.isnan(s) else s

    rest = sorted((c for c in chunks if _leg_rank(c, leg) is None), key=lambda c: (-score(c), c.chunk_id))
    return returned_by(chunks, leg) + rest


def to_doc_scores(ordered: list[Candidate]) -> dict[str, float]:
    """Chunk order -> BEIR doc scores; a document takes its best chunk's rank (max over chunks)."""
    docs: dict[str, float] = {}
    for c in ordered:
        if c.corpus_id not in docs:
            docs[c.corpus_id] = 1.0 / (len(docs) + 1)  # strictly decreasing: the order is the ranking
    return docs


def by_fused_score(chunks: list[Candidate]) -> list[Candidate]:
    """The fused order before any reranking (the retriever's own sort key)."""
    return sorted(chunks, key=lambda c: (-c.fused_score, c.chunk_id))


def leg_run(cands: CandidateSet, leg: str, include_tail: bool = True) -> dict[str, dict[str, float]]:
    """BEIR run for ``dense``, ``bm25``, ``hybrid`` (fused order) or ``hybrid+rerank`` (the
    retriever's final order, which differs from ``hybrid`` only when a reranker is configured).

    ``include_tail=False`` keeps only the chunks the leg itself returned: with the tail, a single
    leg's deep recall is that of the union of both legs whenever the union holds few documents."""
    run: dict[str, dict[str, float]] = {}
    for q in cands.queries:
        if leg == RERANK_LEG:
            ordered = q.chunks  # the retriever's final order
        elif leg == "hybrid":
            ordered = by_fused_score(q.chunks)
        else:
            ordered = leg_order(q.chunks, leg)  # type: ignore[arg-type]
            if not include_tail:
                ordered = [c for c in ordered if (c.dense_rank if leg == "dense" else c.bm25_rank) is not None]
        run[q.qid] = to_doc_scores(ordered)
    return run


def per_query_ndcg(run: Mapping[str, Mapping[str, float]], cands: CandidateSet, k: int = 10) -> dict[str, float]:
    return per_query(ndcg_query, run, cands.qrels, k)


def paired_bootstrap(
    a: Mapping[str, float], b: Mapping[str, float], n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-query (a - b) and its 95% paired-bootstrap interval: is a gap more than noise?"""
    qids = sorted(set(a) & set(b))
    if not qids:
        return 0.0, 0.0, 0.0
    diff = np.array([a[q] - b[q] for q in qids])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def fused_order(
    chunks: list[Candidate],
    method: Literal["rrf", "weighted_sum"],
    dense_weight: float = 1.0,
    bm25_weight: float = 1.0,
    rrf_k: int = 60,
) -> list[Candidate]:
    """Re-fuse one query's candidates offline, exactly as HybridRetriever.run does."""
    weights = {"dense": dense_weight, "bm25": bm25_weight}
    if method == "rrf":
        dense = [c.chunk_id for c in returned_by(chunks, "dense")]
        bm25 = [c.chunk_id for c in returned_by(chunks, "bm25")]
        fused = reciprocal_rank_fusion({"dense": dense, "bm25": bm25}, weights, rrf_k)
    else:
        # The retriever scores missing dense values as 0.0 (dict.get default): do the same.
        dense_s = {c.chunk_id: (0.0 if math.isnan(c.dense_score) else c.dense_score) for c in chunks}
        bm25_s = {c.chunk_id: c.bm25_score for c in chunks}
        fused = weighted_score_sum({"dense": dense_s, "bm25": bm25_s}, weights)
    return sorted(chunks, key=lambda c: (-fused.get(c.chunk_id, 0.0), c.chunk_id))


def fusion_run(cands: CandidateSet, **fusion: object) -> dict[str, dict[str, float]]:
    return {q.qid: to_doc_scores(fused_order(q.chunks, **fusion)) for q in cands.queries}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ scoring


def score_run(
    run: Mapping[str, Mapping[str, float]], cands: CandidateSet, k_values: tuple[int, ...]
) -> dict[str, float]:
    return evaluate_run(run, cands.qrels, k_values=k_values, recall_extra=(100,), mrr_k=10)


def evaluate_candidates(cands: CandidateSet, k_values: tuple[int, ...] = (10,)) -> dict[str, dict[str, float]]:
    """Metrics per leg plus query latency (one retrieval serves all legs: same value for each).

    Single legs rank the other leg's finds after their own (see ``leg_order``); ``recall@100_own``
    and ``docs_own`` describe the leg's own hits alone."""
    lat = cands.latencies_ms
    timing = {
        "ms_per_query": statistics.fmean(lat) if lat else 0.0,
        "ms_p50": float(np.percentile(lat, 50)) if lat else 0.0,
        "ms_p95": float(np.percentile(lat, 95)) if lat else 0.0,
        "queries": float(len(cands.queries)),
    }
    out: dict[str, dict[str, float]] = {}
    for leg in legs_of(cands):
        own = leg_run(cands, leg, include_tail=False)
        out[leg] = {
            **score_run(leg_run(cands, leg), cands, k_values),
            # Recall@100 over the leg's own hits only, and how many documents those hits cover.
            "recall@100_own": recall_at_k(own, cands.qrels, 100),
            "docs_own": statistics.fmean(len(d) for d in own.values()) if own else 0.0,
            **timing,
        }
    return out


def legs_of(cands: CandidateSet) -> tuple[str, ...]:
    return LEGS + ((RERANK_LEG,) if cands.reranked else ())


def evaluate(
    kb: SearchableKnowledgeBase,
    dataset_dir: str | Path,
    k_values: tuple[int, ...] = (10,),
    max_queries: int | None = None,
) -> dict[str, dict[str, float]]:
    """``{"dense"|"bm25"|"hybrid"[|"hybrid+rerank"]: {"ndcg@10", "recall@10", "recall@100", "mrr@10",
    "recall@100_own", "docs_own", "ms_per_query", "ms_p50", "ms_p95", "queries"}}`` for a warmed ``kb``
    that holds the dataset's corpus."""
    return evaluate_candidates(collect_candidates(kb, dataset_dir, max_queries=max_queries), k_values)
