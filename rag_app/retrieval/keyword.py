"""The keyword leg: BM25 over the query's tokens (jieba words for Chinese, stemmed English)."""
from __future__ import annotations

from collections.abc import Sequence

from .protocols import KeywordIndex, Tokenizer


class KeywordSearch:
    """Finds chunks sharing the query's terms, and scores chunks only the dense leg found
    (:meth:`fill`) so every candidate carries a BM25 score for weighted fusion and display.

    The index is loaded by its owner (the knowledge base): nothing to warm up."""

    def __init__(self, index: KeywordIndex, tokenizer: Tokenizer) -> None:
        self.index = index
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        """Chunks in the index: the corpus size."""
        return len(self.index)

    def tokenize(self, query: str) -> list[str]:
        """The query cut the way documents were indexed ([] for a query of stopwords only)."""
        return self.tokenizer.tokenize(query)

    def run(self, tokens: Sequence[str], top_k: int) -> list[tuple[str, float]]:
        """Up to ``top_k`` (chunk_id, BM25 score) pairs, best first; none without tokens."""
        return self.index.search(tokens, top_k) if tokens else []

    def fill(self, tokens: Sequence[str], chunk_ids: Sequence[str]) -> dict[str, float]:
        """The BM25 score of each id. Nothing without tokens or ids: the index is not asked."""
        if not tokens or not chunk_ids:
            return {}
        return {cid: float(score) for cid, score in zip(chunk_ids, self.index.get_scores(tokens, chunk_ids))}

    def max_score(self, tokens: Sequence[str]) -> float:
        """The query's highest possible BM25 score (0 without tokens): ``bm25_coverage`` divides by it."""
        return self.index.max_score(tokens) if tokens else 0.0
