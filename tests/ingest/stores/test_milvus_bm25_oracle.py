"""Oracle test of Milvus full-text search on the two development sets (BEIR folders, one document =
one BM25 document, the same ``BM25Tokenizer`` tokens for both backends, every query).

"Same top-10" means the same *set* of 10 ids (or of all the ids returned, when fewer match); the
share with the identical order is reported too. A difference only among documents tied at the 10th
score (rel. 1e-5: Milvus scores in float32) counts as the same.

What was measured (Milvus Lite 2.5.1, k1 1.5, b 0.75; printed by the test with ``-s``):

* Milvus against BM25 computed by hand with Lucene's idf, ``log(1 + (N - df + 0.5)/(df + 0.5))``
  (what Milvus documents and uses): the same top-10 on every query of both sets, scores within
  ~2e-7 relative. Asserted: >= 99% and 1e-5.
* Milvus against the in-process ``BM25Index`` as shipped (``bm25.idf: lucene``, the default since
  2026-12-04): the same top-10 on 100% of both sets' queries. Asserted: >= 90% (the issue's target).
* Milvus against the in-process index with rank_bm25's idf ``log((N - df + 0.5)/(df + 0.5))`` and its
  epsilon floor (``bm25.idf: okapi``, the default before): the same top-10 set on 83.4% of
  cmrc2018-trial's queries and 63.2% of scifact-dev's (identical order 61.0% / 24.0%); 9.8 / 9.55 of
  the 10 ids shared on average: the idf formula alone makes the difference (each index agrees with
  its own formula exactly). Asserted: the mean overlap (>= 9 of 10) and the measured set agreement
  minus 5 points.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.beir import corpus_id_of, iter_corpus, load_queries
from ingest.settings import BM25Settings, MilvusSettings
from ingest.stores.bm25_index import BM25Index
from ingest.stores.milvus_store import MilvusVectorStore
from ingest.text_tokenizer import BM25Tokenizer
from ingest.types import Chunk
from tests.support.paths import REPO

pytestmark = pytest.mark.integration  # opens Milvus Lite

DATA = REPO.parent / "shared" / "data"
K = 10
TIE_RTOL = 1e-5
# Measured set agreement with BM25Index(idf="okapi") minus 5 points (see the module docstring).
FLOOR_VS_OKAPI = {"cmrc2018-trial": 0.78, "scifact-dev": 0.58}


def _lucene(docs: Sequence[Sequence[str]], k1: float, b: float) -> Callable[[Sequence[str]], np.ndarray]:
    """Every document's BM25 score with Lucene's idf (Milvus's formula), exact in float64."""
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, d in enumerate(docs):
        for t, f in Counter(d).items():
            postings[t].append((i, f))
    dl = np.array([len(d) for d in docs], np.float64)
    n = len(docs)
    norm = k1 * (1 - b + b * dl / dl.mean())

    def score(query: Sequence[str]) -> np.ndarray:
        s = np.zeros(n)
        for t in query:
            p = postings.get(t)
            if p:
                idf = math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5))
                rows = np.array([i for i, _ in p])
                tf = np.array([f for _, f in p], np.float64)
                s[rows] += idf * tf * (k1 + 1) / (tf + norm[rows])
        return s

    return score


def _same_top(expected: list[str], got: list[str], score: dict[str, float]) -> bool:
    """The same set, or one that differs only among ids tied with the expected 10th score."""
    if set(expected) == set(got):
        return True
    if len(expected) != len(got) or not expected:
        return False
    kth = score[expected[-1]]
    return all(score.get(c, 0.0) >= kth * (1 - TIE_RTOL) for c in got)


@pytest.mark.parametrize("dataset", ["cmrc2018-trial", "scifact-dev"])
def test_milvus_bm25_against_lucene_and_the_in_process_index(dataset: str, tmp_path: Path) -> None:
    folder = DATA / dataset
    if not (folder / "corpus.jsonl").is_file():
        pytest.skip(f"{folder} is not here (the shared development data)")
    settings = BM25Settings(backend="milvus")
    tokenizer = BM25Tokenizer()
    docs = list(iter_corpus(folder))
    ids = [str(corpus_id_of(d.source)) for d in docs]
    tokens = tokenizer.tokenize_many([d.sections[0].text for d in docs])
    queries = [q for q in (tokenizer.tokenize(text) for text in load_queries(folder).values()) if q]

    local = BM25Index(k1=settings.k1, b=settings.b, epsilon=settings.epsilon, idf=settings.idf)  # as shipped
    local.add(ids, tokens)
    okapi = BM25Index(k1=settings.k1, b=settings.b, epsilon=settings.epsilon, idf="okapi")  # bm25.idf: okapi
    okapi.add(ids, tokens)
    store = MilvusVectorStore(MilvusSettings(), str(tmp_path / "milvus.db"), 2, full_text=settings)
    try:
        chunks = [Chunk(chunk_id=i, doc_id=i, source=i, text="", ordinal=0) for i in ids]
        store.upsert(chunks, np.ones((len(ids), 2), np.float32), keywords=tokens)
        milvus = store.search_keywords(queries, K)
    finally:
        store.close()
    lucene = _lucene(tokens, settings.k1, settings.b)
    position = {c: i for i, c in enumerate(ids)}

    same_lucene = same_okapi = order_okapi = same_local = 0
    overlap = 0.0
    worst_score_error = 0.0
    for query, hits in zip(queries, milvus):
        got = [cid for cid, _, _ in hits]
        ref = lucene(query)
        cand = np.flatnonzero(ref > 0)
        top = cand[np.lexsort((cand, -ref[cand]))][:K]
        ref_scores = {ids[i]: float(ref[i]) for i in cand}
        same_lucene += _same_top([ids[i] for i in top], got, ref_scores)
        for cid, score, _ in hits:
            worst_score_error = max(worst_score_error, abs(score - ref[position[cid]]) / ref[position[cid]])

        local_hits = local.search(query, K)
        local_scores = dict(zip(got, local.get_scores(query, got).tolist())) | dict(local_hits)
        same_local += _same_top([cid for cid, _ in local_hits], got, local_scores)
        okapi_hits = okapi.search(query, K)
        expected = [cid for cid, _ in okapi_hits]
        okapi_scores = dict(zip(got, okapi.get_scores(query, got).tolist())) | dict(okapi_hits)
        same_okapi += _same_top(expected, got, okapi_scores)
        order_okapi += expected == got
        overlap += len(set(expected) & set(got)) / max(len(expected), 1)

    n = len(queries)
    print(
        f"\n{dataset}: {n} queries; Milvus vs Lucene-formula reference: same top-{K} {same_lucene / n:.1%},"
        f" max score error {worst_score_error:.1e}; vs BM25Index as shipped (idf {settings.idf}): same top-{K}"
        f" {same_local / n:.1%}; vs BM25Index(idf='okapi'): same top-{K} set {same_okapi / n:.1%},"
        f" identical order {order_okapi / n:.1%}, mean overlap {overlap / n:.3f}"
    )
    assert same_lucene / n >= 0.99 and worst_score_error < 1e-5
    assert same_local / n >= 0.9
    assert overlap / n >= 0.9
    assert same_okapi / n >= FLOOR_VS_OKAPI[dataset]
