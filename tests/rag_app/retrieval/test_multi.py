"""Merging the results of several knowledge bases: rank by rank, every chunk tagged with its origin."""
from __future__ import annotations

from ingest.types import Chunk
from rag_app.retrieval.multi import MultiRetriever
from rag_app.retrieval.results import RetrievalResult, RetrievedChunk


def _hit(chunk_id: str, fused: float) -> RetrievedChunk:
    chunk = Chunk(chunk_id, "d", f"{chunk_id}.md", f"text {chunk_id}", 0)
    return RetrievedChunk(chunk, 0.8, 2.0, 0.1, 1.0, 1, 1, fused)


class _Fixed:
    def __init__(self, chunks: list[RetrievedChunk], note: str = "") -> None:
        self.result = RetrievalResult("q", chunks, len(chunks) + 3, [], {"dense_ms": 1.0}, note)

    def run(self, query: str, top_k: int | None = None) -> RetrievalResult:
        return self.result


def test_results_interleave_rank_by_rank_and_keep_their_knowledge_base() -> None:
    a = _Fixed([_hit("a1", 1.0), _hit("a2", 0.9), _hit("a3", 0.2)])
    b = _Fixed([_hit("b1", 0.7), _hit("b2", 0.95)])
    merged = MultiRetriever({"A": a, "B": b}, top_k=4).run("q")
    assert [(c.kb, c.chunk_id) for c in merged.chunks] == [("A", "a1"), ("B", "b1"), ("B", "b2"), ("A", "a2")]
    assert merged.candidates == 11 and set(merged.timings_ms) == {"A:dense_ms", "B:dense_ms"}
    assert merged.chunks[0].to_dict()["kb"] == "A"


def test_nothing_passes_anywhere_is_a_refusal_with_every_reason() -> None:
    merged = MultiRetriever({"A": _Fixed([], "too far"), "B": _Fixed([], "off topic")}, top_k=5).run("q")
    assert not merged.has_evidence and merged.note == "A: too far; B: off topic"
    one = MultiRetriever({"A": _Fixed([_hit("a1", 1.0)])}, top_k=5).run("q")
    assert [c.kb for c in one.chunks] == ["A"]
