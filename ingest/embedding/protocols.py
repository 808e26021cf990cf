"""What a knowledge base needs from a text embedder, as a ``typing.Protocol``.

:class:`~ingest.embedding.embedder.Embedder` satisfies it as it is; a test passes a deterministic
in-memory embedder (``tests/support/fakes.py``) instead. The narrower protocols of each consumer
(``ingest.chunking.TokenCounter``, ``ingest.indexer.DocumentEmbedder``,
``rag_app.retrieval.protocols.QueryEmbedder``, ``rag_app.answering.answerer.QuestionEmbedder``) are
all parts of this one.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from ingest.settings import EmbedderSettings

Kind = Literal["passage", "query"]


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds passages and queries, and counts tokens the way it embeds them (for chunking and for
    bounding questions). Construct light; ``warm_up`` loads."""

    @property
    def settings(self) -> EmbedderSettings:
        """The model and its conventions (the threshold's reference cache is keyed on them)."""
        ...

    @property
    def is_warm(self) -> bool: ...

    @property
    def dim(self) -> int:
        """Vector dimension (known without loading the weights)."""
        ...

    @property
    def max_tokens(self) -> int:
        """Model input limit in tokens, prefix and special tokens included."""
        ...

    @property
    def model_path(self) -> str:
        """Where the weights load from (the default base model of a tuned reranker)."""
        ...

    def warm_up(self) -> None:
        """Load the model. Idempotent."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, dim]`` passage embeddings."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, dim]`` query embeddings."""
        ...

    def count_tokens(self, texts: Sequence[str], kind: Kind = "passage") -> list[int]:
        """Model input length of each text (prefix and special tokens included, no truncation)."""
        ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` alone (no prefix, no special tokens)."""
        ...

    def prefix_tokens(self, kind: Kind = "passage") -> int:
        """Tokens that the prefix and special tokens add to a text's own tokens."""
        ...
