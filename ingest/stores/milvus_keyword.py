"""Keyword search by Milvus itself (``bm25.backend: milvus``): the retriever's ``KeywordIndex`` over a
full-text collection of :class:`~ingest.stores.milvus_store.MilvusVectorStore`.

Milvus scores BM25 the Lucene way (checked numerically on Milvus Lite 2.5.1)::

    idf(t)   = log(1 + (N - df + 0.5) / (df + 0.5))        N, df over the collection's rows
    score(d) = sum over query tokens q (repeats count again) of
               idf(q) * tf*(k1+1) / (tf + k1*(1 - b + b*dl/avgdl))

where ``dl`` is the chunk's token count: the local ``BM25Index``'s default idf too (``bm25.idf:
lucene``), so both backends rank alike. With ``bm25.idf: okapi`` (rank_bm25's
``log((N - df + 0.5) / (df + 0.5))`` with an epsilon floor) the scores differ and the rankings mostly
agree (BENCHMARKS.md, "BM25 backends").

``search`` and ``get_scores`` are Milvus searches (``get_scores``: filtered to the given chunk ids).
``max_score`` and ``score_tokens`` need each token's idf and the collection's ``avgdl``, which Milvus
does not expose. They are solved from search results instead, exactly up to float32 rounding:

* one batched search sends every distinct query token as its own query (limit 2, with the hits'
  ``keywords``, from which each hit's ``tf`` and ``dl`` are counted). A hit's score is
  ``s = u * tf / (tf + A + B*dl)`` with ``u = idf*(k1+1)``, ``A = k1*(1-b)`` and ``B = k1*b/avgdl``;
* two hits of one token give two such equations; eliminating ``u`` leaves one linear equation in
  ``B``: ``B * (s1*dl1/tf1 - s2*dl2/tf2) = s2*(tf2+A)/tf2 - s1*(tf1+A)/tf1``. The equations of all
  tokens are pooled by least squares (a pair of hits with the same ``dl/tf`` carries no information
  and weighs nothing). ``B`` is cached for the queries that yield no usable pair (a single-token
  query of a rare word); with no estimate at all, a few tokens of the hits are probed the same way,
  and failing that (a tiny or uniform corpus) ``avgdl`` is counted over every row's keywords;
* each token's idf then follows from its top hit: ``idf = s1*(tf1 + A + B*dl1) / (tf1*(k1+1))``;
  a token without hits has ``df = 0``: ``idf = log(1 + (N + 0.5)/0.5)``, ``N`` the row count.

``max_score`` is then ``sum over query tokens (repeats count) of idf*(k1+1)``, the same bound as
``BM25Index.max_score``; ``score_tokens`` applies the formula above to the given document, skipping
terms no indexed chunk has (as ``BM25Index`` does). Both cost one extra Milvus search per query.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ingest.settings import BM25Settings
from ingest.stores.milvus_store import MilvusVectorStore, keyword_text

log = logging.getLogger(__name__)

_ID_BATCH = 1000  # chunk ids per filtered search in get_scores
_PROBE_TOKENS = 16  # tokens probed to estimate avgdl when a query gives no usable pair of hits
# A pair of hits whose dl/tf terms differ by less than this (relatively) says nothing about avgdl
# beyond float32 noise.
_MIN_SPREAD = 1e-3

_Hit = tuple[float, int, int, str]  # a hit's score, the token's tf, the chunk's dl, its keywords


class MilvusKeywordIndex:
    """BM25 over a full-text Milvus collection, with ``BM25Index``'s reading interface.

    ``settings``: the configured BM25 settings (their ``k1``/``b`` made the collection; an existing
    collection keeps the ones it was created with, and those are what scores are solved with)."""

    def __init__(self, store: MilvusVectorStore, settings: BM25Settings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._b_coef: float | None = None  # B = k1*b/avgdl, last estimate

    # --- the KeywordIndex protocol -------------------------------------------------------------------
    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Top-``k`` (chunk id, score), best first, among chunks containing a query term."""
        if k <= 0 or not query_tokens:
            return []
        return [(cid, score) for cid, score, _ in self.store.search_keywords([list(query_tokens)], k)[0]]

    def get_scores(self, query_tokens: Sequence[str], chunk_ids: Sequence[str]) -> np.ndarray:
        """The score of each of ``chunk_ids`` (float64, same order); 0.0 for ids not in the collection
        or without a query term."""
        out = np.zeros(len(chunk_ids), np.float64)
        if not query_tokens or not chunk_ids:
            return out
        unique = list(dict.fromkeys(chunk_ids))
        found: dict[str, float] = {}
        for i in range(0, len(unique), _ID_BATCH):
            part = unique[i : i + _ID_BATCH]
            for cid, score, _ in self.store.search_keywords([list(query_tokens)], len(part), chunk_ids=part)[0]:
                found[cid] = score
        for j, cid in enumerate(chunk_ids):
            out[j] = found.get(cid, 0.0)
        return out

    def max_score(self, query_tokens: Sequence[str]) -> float:
        """An upper bound of any chunk's score: each query token's idf times (k1 + 1), the limit of a
        term's score as its frequency grows; a token no chunk has counts at the idf of df = 0."""
        tokens = _terms(query_tokens)
        if not tokens:
            return 0.0
        idf, _ = self._token_stats(set(tokens), unseen=True)
        k1, _ = self.store.bm25_params()
        return sum(idf.get(t, 0.0) for t in tokens) * (k1 + 1)

    def score_tokens(self, query_tokens: Sequence[str], doc_tokens: Sequence[str]) -> float:
        """The score an unindexed chunk of these tokens would get under the collection's statistics."""
        doc = _terms(doc_tokens)
        query = _terms(query_tokens)
        tf = Counter(doc)
        wanted = {q for q in query if tf.get(q)}
        if not wanted:
            return 0.0
        idf, b_coef = self._token_stats(wanted, unseen=False)
        k1, b = self.store.bm25_params()
        norm = k1 * (1 - b) + b_coef * len(doc)
        score = 0.0
        for q in query:
            f = tf.get(q, 0)
            if f and q in idf:  # a term no indexed chunk has scores nothing, as in BM25Index
                score += idf[q] * (f * (k1 + 1) / (f + norm))
        return score

    def __len__(self) -> int:
        """Rows in the collection: the corpus size."""
        return self.store.count()

    # --- for the tuning and status code (as BM25Index) -----------------------------------------------
    def ids(self) -> set[str]:
        return self.store.all_ids()

    def avgdl(self) -> float | None:
        """The collection's average chunk length in tokens, as last solved (None before any query)."""
        k1, b = self.store.bm25_params()
        with self._lock:
            b_coef = self._b_coef
        return k1 * b / b_coef if b_coef else None

    # --- internals ----------------------------------------------------------------------------------
    def _token_stats(self, tokens: set[str], unseen: bool) -> tuple[dict[str, float], float]:
        """Each token's idf (tokens without hits: df = 0's idf when ``unseen``, else left out) and the
        length coefficient B = k1*b/avgdl, from one batched search (see the module docstring)."""
        k1, b = self.store.bm25_params()
        a_coef = k1 * (1 - b)
        order = sorted(tokens)
        obs = dict(zip(order, self._observe(order)))
        b_coef = self._solve_b(list(obs.values()), k1, b)
        if b_coef is None:
            b_coef = self._fallback_b(obs, k1, b)
        idf: dict[str, float] = {}
        n_rows: int | None = None
        for t, rows in obs.items():
            if rows:
                s1, tf1, dl1, _ = rows[0]
                idf[t] = s1 * (tf1 + a_coef + b_coef * dl1) / (tf1 * (k1 + 1))
            elif unseen:
                n_rows = self.store.count() if n_rows is None else n_rows
                idf[t] = math.log(1 + (n_rows + 0.5) / 0.5) if n_rows else 0.0
        return idf, b_coef

    def _observe(self, tokens: list[str]) -> list[list[_Hit]]:
        """Per token, its top two hits as (score, tf, dl, keywords)."""
        hits = self.store.search_keywords([[t] for t in tokens], 2, with_keywords=True)
        return [[_observation(t, score, kw) for _, score, kw in per] for t, per in zip(tokens, hits)]

    def _solve_b(self, observations: list[list[_Hit]], k1: float, b: float) -> float | None:
        """B from the pairs of hits (least squares), cached; None when no pair is usable and none cached."""
        if b == 0 or k1 == 0:  # no length normalisation (b = 0), or none at all (k1 = 0)
            return 0.0
        a_coef = k1 * (1 - b)
        num = den = 0.0
        for rows in observations:
            if len(rows) < 2:
                continue
            (s1, tf1, dl1, _), (s2, tf2, dl2, _) = rows[0], rows[1]
            x1, x2 = s1 * dl1 / tf1, s2 * dl2 / tf2
            a = x1 - x2
            if abs(a) <= _MIN_SPREAD * max(abs(x1), abs(x2)):
                continue
            c = s2 * (tf2 + a_coef) / tf2 - s1 * (tf1 + a_coef) / tf1
            num += a * c
            den += a * a
        with self._lock:
            if den > 0 and num / den > 0:
                self._b_coef = num / den
            return self._b_coef

    def _fallback_b(self, obs: dict[str, list[_Hit]], k1: float, b: float) -> float:
        """No pair of hits told avgdl and none is cached: probe other tokens of the hits, else count."""
        seen, probe = set(obs), list[str]()
        for hits in obs.values():
            for *_, keywords in hits:
                for t in keywords.split():
                    if t not in seen and len(probe) < _PROBE_TOKENS:
                        seen.add(t)
                        probe.append(t)
        if probe:
            b_coef = self._solve_b(self._observe(probe), k1, b)
            if b_coef is not None:
                return b_coef
        rows, total = self.store.keyword_lengths()
        if not total:  # no tokens at all: nothing scores, and nothing worth caching
            return k1 * b
        avgdl = total / rows
        log.debug("milvus bm25: avgdl counted over %d rows: %.3f", rows, avgdl)
        with self._lock:
            self._b_coef = k1 * b / avgdl
            return self._b_coef


def _terms(tokens: Sequence[str]) -> list[str]:
    """Tokens as Milvus sees them (``keyword_text`` split again: whitespace inside a token removed)."""
    return keyword_text(t for t in tokens if isinstance(t, str)).split()


def _observation(token: str, score: float, keywords: str) -> _Hit:
    """(score, tf of ``token``, dl, keywords) of one hit, counted from its stored keywords."""
    terms = keywords.split()
    return score, max(terms.count(token), 1), len(terms), keywords
