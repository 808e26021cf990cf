"""Old home of the hybrid retriever, kept so existing imports keep working.

The retriever is now a pipeline of small stages: see :mod:`rag_app.retrieval.pipeline` (and the
package docstring for the layout). Import new code from the modules named below.
"""
from __future__ import annotations

from .pipeline import HybridRetriever, clean_query
from .protocols import QueryEmbedder
from .results import RetrievalResult, RetrievedChunk
from .threshold import REFERENCE_PASSAGES, load_reference_passages

__all__ = [
    "REFERENCE_PASSAGES",
    "HybridRetriever",
    "QueryEmbedder",
    "RetrievalResult",
    "RetrievedChunk",
    "clean_query",
    "load_reference_passages",
]
