"""The candidate set: every chunk either leg found, with both legs' ranks and scores.

The pipeline builds it from the two legs' hits, then asks each leg to score the candidates only the
other leg found, so every candidate carries both scores (for the threshold, weighted fusion and
display). Fusion reads it; nothing else needs to know how the legs were merged.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ingest.types import Chunk


@dataclass
class Candidates:
    chunks: dict[str, Chunk]  # every candidate by id: the dense leg's hits first, in rank order
    dense_ranking: list[str]  # the dense leg's ids, best first
    bm25_ranking: list[str]  # the BM25 leg's ids, best first (may name chunks the vector store lacks)
    dense_scores: dict[str, float]  # cosine similarity, for every candidate once filled
    bm25_scores: dict[str, float]  # BM25 score, for every candidate once filled (if the query had tokens)
    _dense_rank: dict[str, int] = field(init=False, repr=False)
    _bm25_rank: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._dense_rank = {cid: i for i, cid in enumerate(self.dense_ranking, start=1)}
        self._bm25_rank = {cid: i for i, cid in enumerate(self.bm25_ranking, start=1)}

    @classmethod
    def from_legs(
        cls, dense_hits: Sequence[tuple[Chunk, float]], bm25_hits: Sequence[tuple[str, float]]
    ) -> Candidates:
        """The dense hits (chunk, cosine) and BM25 hits (chunk_id, score) as returned by the legs.

        BM25 hits are ids only: their chunks are added by :meth:`add_dense` (which also fetches
        them), so a BM25 id the vector store lacks never becomes a candidate, while it still holds
        its place in the BM25 ranking."""
        return cls(
            chunks={chunk.chunk_id: chunk for chunk, _ in dense_hits},
            dense_ranking=[chunk.chunk_id for chunk, _ in dense_hits],
            bm25_ranking=[cid for cid, _ in bm25_hits],
            dense_scores={chunk.chunk_id: score for chunk, score in dense_hits},
            bm25_scores={cid: score for cid, score in bm25_hits},
        )

    @property
    def ids(self) -> list[str]:
        return list(self.chunks)

    def dense_rank(self, chunk_id: str) -> int | None:
        """1-based rank in the dense leg, None if that leg did not return it."""
        return self._dense_rank.get(chunk_id)

    def bm25_rank(self, chunk_id: str) -> int | None:
        return self._bm25_rank.get(chunk_id)

    def bm25_only(self) -> list[str]:
        """Ids only the BM25 leg found (so far without a chunk or a dense score), in its order."""
        return [cid for cid in self._bm25_rank if cid not in self.chunks]

    def add_dense(self, found: Mapping[str, tuple[Chunk, float]]) -> None:
        """Chunks and cosines the dense leg filled in for :meth:`bm25_only` ids."""
        for cid, (chunk, score) in found.items():
            self.chunks[cid] = chunk
            self.dense_scores[cid] = score

    def dense_only(self) -> list[str]:
        """Candidates without a BM25 score (the ones only the dense leg found), in candidate order."""
        return [cid for cid in self.chunks if cid not in self.bm25_scores]

    def add_bm25(self, scores: Mapping[str, float]) -> None:
        self.bm25_scores.update(scores)

    def without(self, leave_out: Callable[[Chunk], bool]) -> Candidates:
        """The candidates except the chunks ``leave_out`` names, ranks closed up (as if the
        knowledge base did not hold them: an evaluation removes a question's evidence this way)."""
        gone = {cid for cid, chunk in self.chunks.items() if leave_out(chunk)}
        return Candidates(
            chunks={cid: c for cid, c in self.chunks.items() if cid not in gone},
            dense_ranking=[cid for cid in self.dense_ranking if cid not in gone],
            bm25_ranking=[cid for cid in self.bm25_ranking if cid not in gone],
            dense_scores={cid: v for cid, v in self.dense_scores.items() if cid not in gone},
            bm25_scores={cid: v for cid, v in self.bm25_scores.items() if cid not in gone},
        )
