"""What retrieval returns: a stored chunk with every stage's evidence, and the result of one query.

``RetrievedChunk`` wraps the one chunk record (``ingest.types.Chunk``) instead of copying its
fields, and ``RetrievedChunk.to_dict`` is its one JSON form (the search API's hits and the answer's
numbered sources both use it).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ingest.types import Chunk, source_label

# The scores shown with a chunk, in display order; keys drop the "_score" suffix.
SCORE_FIELDS = (
    "relevance", "fused_score", "dense_score", "dense_margin", "dense_z", "bm25_score", "bm25_coverage",
    "rerank_score",
)


@dataclass
class RetrievedChunk:
    """A chunk with every leg's evidence, so callers and the UI can show why it was chosen.

    Mutable only so the rerank stage can add ``rerank_score``; the chunk itself is frozen."""

    chunk: Chunk
    dense_score: float  # cosine similarity to the query
    dense_z: float  # robust std devs above the query's similarity to random corpus chunks
    dense_margin: float  # cosine minus the query's best cosine to generic unrelated passages
    bm25_score: float
    dense_rank: int | None  # 1-based rank in its leg, None if the leg did not return it
    bm25_rank: int | None
    fused_score: float
    rerank_score: float | None = None
    bm25_coverage: float = math.nan  # bm25_score / the query's highest possible BM25 score, in [0, 1)
    relevance: float | None = None  # the knowledge base's calibrated score, when it has one
    kb: str = ""  # the knowledge base it came from, when a question searched several (``multi``)

    # Read-only views of the chunk, so callers written against the old flat record keep working.
    @property
    def chunk_id(self) -> str:
        return self.chunk.chunk_id

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def indexed_text(self) -> str:
        return self.chunk.indexed_text

    @property
    def ordinal(self) -> int:
        return self.chunk.ordinal

    @property
    def page(self) -> int | None:
        return self.chunk.page

    @property
    def section(self) -> str:
        return self.chunk.section

    @property
    def location(self) -> str:
        return self.chunk.location

    def with_text(self, text: str) -> RetrievedChunk:
        """A copy quoting other text (the prompt cuts an over-long chunk to fit its budget)."""
        return dataclasses.replace(self, chunk=dataclasses.replace(self.chunk, text=text))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a hit: where it is from, its text and its scores (NaN as None)."""
        return {
            "source": self.source,
            "file": source_label(self.source),
            "page": self.page,
            "section": self.section,
            "location": self.location,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "scores": chunk_scores(self),
            **({"kb": self.kb} if self.kb else {}),
        }


def chunk_scores(c: Any) -> dict[str, float | None]:
    """``{"relevance": ..., "fused": 0.8123, "dense": ..., "dense_margin", "dense_z", "bm25",
    "bm25_coverage", "rerank"}``, rounded to
    4 places. NaN (e.g. dense_z on a corpus too small to calibrate) and "not reranked" are None:
    NaN is not JSON."""
    out: dict[str, float | None] = {}
    for name in SCORE_FIELDS:
        if not hasattr(c, name):  # a duck-typed hit without that stage: the key is left out
            continue
        value = getattr(c, name)
        finite = value is not None and math.isfinite(value)
        out[name.removesuffix("_score")] = round(float(value), 4) if finite else None
    return out


def best_keyword_coverage(candidates: Iterable[object]) -> float | None:
    """The best ``bm25_coverage`` among a question's candidates (retrieved chunks, or evaluation
    candidates): the question's *style* (``rag_app.calibration.question_style``). None when no
    candidate has one."""
    values = [v for c in candidates if (v := getattr(c, "bm25_coverage", None)) is not None and math.isfinite(v)]
    return max(values) if values else None


@dataclass
class RetrievalResult:
    query: str
    chunks: list[RetrievedChunk]  # passed the threshold, best first
    candidates: int  # candidates considered before the threshold
    below_threshold: list[RetrievedChunk] = field(default_factory=list)  # best rejected, for display
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why nothing came back, when nothing did
    # best_keyword_coverage() of its candidates: the question's style. None without candidates.
    keyword_coverage: float | None = None
    # A candidate reaches the knowledge base's unweighted probe cutoff
    # (KnowledgeBaseCalibration.on_topic); None without a calibration.
    on_topic: bool | None = None

    @property
    def has_evidence(self) -> bool:
        return bool(self.chunks)
