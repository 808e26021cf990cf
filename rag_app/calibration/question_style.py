"""The questions people actually ask tell the calibration which probes to trust.

Sentence probes (a sentence taken out of its chunk) stand for questions that paraphrase their
evidence; window probes (part of a sentence, left in its chunk) for questions in the documents' own
words. Which a team asks is not in its documents, but it shows in the questions themselves: the
*style* of a question is its best BM25 coverage (the share of its highest possible keyword score
that its best keyword match reaches: ``rag_app.retrieval.results.best_keyword_coverage``, which
retrieval records for every question), high for extractive questions, lower for paraphrase. Once
enough questions were asked, the probes of both kinds are pooled and weighted so that their styles
follow the asked questions' (importance weighting over quintiles of the pool's styles), and the
cutoff is chosen on that weighted pool as on any probe set. Only the style numbers are kept, never
the questions. BENCHMARKS.md, "Refusal on the same language", measures it on questions the
weighting never saw.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from rag_app.evaluation.beir_eval import CandidateSet, QueryCandidates
from rag_app.retrieval.results import best_keyword_coverage

STYLE_BINS = 5  # quintiles of the pooled probes' styles: at 40 asked questions, 8 per bin on average
WEIGHTED_PROBES = 2000  # drawn (seeded, with replacement) from the weighted pool


def style_weights(pool: Sequence[float], asked: Sequence[float], bins: int = STYLE_BINS) -> np.ndarray:
    """Each pooled probe's weight: the asked questions' share in its style bin over the pool's own
    share there (bins are quantiles of the pool's styles). A bin no asked question falls in gets 0."""
    p = np.asarray(pool, dtype=np.float64)
    a = np.asarray(asked, dtype=np.float64)
    if p.size == 0 or a.size == 0:
        raise ValueError("style weights need probes and asked questions")
    edges = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1])
    pool_bin, asked_bin = np.digitize(p, edges), np.digitize(a, edges)
    pool_share = np.bincount(pool_bin, minlength=bins) / p.size
    asked_share = np.bincount(asked_bin, minlength=bins) / a.size
    return asked_share[pool_bin] / pool_share[pool_bin]


def probes_like_asked(
    sentences: CandidateSet, windows: CandidateSet, asked: Sequence[float], seed: int = 0, n: int = WEIGHTED_PROBES
) -> CandidateSet:
    """Probes of both kinds drawn in proportion to how like the asked questions their styles are."""
    pool = [q for q in sentences.queries + windows.queries if q.chunks]
    styles = [best_keyword_coverage(q.chunks) or 0.0 for q in pool]
    weights = style_weights(styles, asked)
    picks = random.Random(seed).choices(range(len(pool)), weights=weights.tolist(), k=n)
    return CandidateSet(
        "probes like the asked questions",
        [QueryCandidates(f"{pool[j].qid}#{i}", pool[j].chunks, 0.0) for i, j in enumerate(picks)],
        depth=sentences.depth,
    )
