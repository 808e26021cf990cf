"""The hybrid retriever as a LangChain ``BaseRetriever``, for users' own chains."""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag_app.retrieval.pipeline import HybridRetriever


class LangChainHybridRetriever(BaseRetriever):
    """``retriever.invoke("年假有几天")`` -> Documents whose metadata carry every leg's score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    hybrid: Any  # HybridRetriever (Any: pydantic cannot validate the class)
    top_k: int | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hybrid: HybridRetriever = self.hybrid
        result = hybrid.run(query, top_k=self.top_k)
        return [
            Document(
                page_content=c.text,
                id=c.chunk_id,
                metadata={
                    "chunk_id": c.chunk_id,
                    "doc_id": c.doc_id,
                    "source": c.source,
                    "page": c.page,
                    "section": c.section,
                    "dense_score": c.dense_score,
                    "dense_z": c.dense_z,
                    "dense_margin": c.dense_margin,
                    "bm25_score": c.bm25_score,
                    "fused_score": c.fused_score,
                    "rerank_score": c.rerank_score,
                },
            )
            for c in result.chunks
        ]
