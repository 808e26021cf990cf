"""Searching several knowledge bases with one question.

Each knowledge base runs its own retriever, with its own calibrated cutoff and fusion; what passes
is merged rank by rank (every knowledge base's best chunk, then every second best, ...; ties by
fused score). Fused scores are normalised per query within one knowledge base, so ranks, not
scores, are what compares across knowledge bases. Every chunk is tagged with its knowledge base.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from .results import RetrievalResult, RetrievedChunk


class Retriever(Protocol):
    def run(self, query: str, top_k: int | None = None) -> RetrievalResult: ...


def _tagged(chunks: list[RetrievedChunk], kb: str) -> list[RetrievedChunk]:
    return [dataclasses.replace(c, kb=kb) for c in chunks]


def _interleave(lists: list[list[RetrievedChunk]], limit: int) -> list[RetrievedChunk]:
    ranked = [(rank, -c.fused_score, i, c) for i, chunks in enumerate(lists) for rank, c in enumerate(chunks)]
    return [c for *_, c in sorted(ranked, key=lambda t: t[:3])][:limit]


class MultiRetriever:
    """The retrievers of several knowledge bases, by id, as one retriever."""

    def __init__(self, retrievers: Mapping[str, Retriever], top_k: int) -> None:
        if not retrievers:
            raise ValueError("at least one knowledge base to search")
        self.retrievers = dict(retrievers)
        self.top_k = top_k

    def run(self, query: str, top_k: int | None = None) -> RetrievalResult:
        k = top_k or self.top_k
        results = {kb: retriever.run(query, top_k=k) for kb, retriever in self.retrievers.items()}
        if len(results) == 1:
            (kb, only), = results.items()
            return dataclasses.replace(only, chunks=_tagged(only.chunks, kb),
                                       below_threshold=_tagged(only.below_threshold, kb))
        timings: dict[str, float] = {}
        for kb, result in results.items():
            timings.update({f"{kb}:{name}": ms for name, ms in result.timings_ms.items()})
        notes = [f"{kb}: {r.note}" for kb, r in results.items() if r.note and not r.has_evidence]
        return RetrievalResult(
            query=query,
            chunks=_interleave([_tagged(r.chunks, kb) for kb, r in results.items()], k),
            candidates=sum(r.candidates for r in results.values()),
            below_threshold=_interleave([_tagged(r.below_threshold, kb) for kb, r in results.items()], k),
            timings_ms=timings,
            note="" if any(r.has_evidence for r in results.values()) else "; ".join(notes),
        )
