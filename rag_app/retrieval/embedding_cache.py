"""Embeddings of fixed texts shipped with the app (reference passages, the off-topic pool), computed
once per embedder model and kept as ``.npy`` files, so a restart or a re-calibration does not embed
them again."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.files import atomic_write

from .protocols import QueryEmbedder


def cache_file(embedder: QueryEmbedder, texts: Sequence[str], kind: Literal["query", "passage"], cache_dir: Path,
               name: str) -> Path:
    """``<name>-<key>.npy``, the key hashing the model, its prefix for ``kind`` and the texts: any of
    them changing makes a new file rather than reusing stale vectors."""
    settings = getattr(embedder, "settings", None)
    model = getattr(settings, "model", "embedder")
    prefix = getattr(settings, f"{kind}_prefix", "")
    key = hashlib.sha256("\x00".join([model, kind, prefix, *texts]).encode("utf-8")).hexdigest()[:16]
    return cache_dir / f"{name}-{key}.npy"


def cached_embeddings(
    embedder: QueryEmbedder,
    texts: Sequence[str],
    kind: Literal["query", "passage"],
    cache_dir: Path | None,
    name: str,
    batch_size: int = 256,
) -> np.ndarray:
    """The texts' vectors (float32, one row each), from the cache when it has them."""
    path = cache_file(embedder, texts, kind, cache_dir, name) if cache_dir is not None else None
    if path is not None and path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(texts):
            return vectors
    embed = embedder.embed_queries if kind == "query" else embedder.embed_documents
    parts = [np.asarray(embed(list(texts[i:i + batch_size])), dtype=np.float32)
             for i in range(0, len(texts), batch_size)]
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a concurrent reader never sees half a file.
        atomic_write(path, lambda out: np.save(out, vectors, allow_pickle=False))
    return vectors
