"""What runs where and whether the stores agree, for the Status tab and ``/api/status``. Never secrets."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rag_app.config import Settings

from .knowledge_base import KnowledgeBase


def redact_uri(uri: str) -> str:
    """A URI without user:password (Milvus and LLM URLs are shown in the Status tab)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def store_counts(kb: KnowledgeBase) -> dict[str, Any]:
    """Documents and chunks per store; a Milvus server that is down shows as unavailable."""
    registry, vectors, bm25 = kb.stores()
    counts: dict[str, Any] = {
        "documents": len(registry.documents()),
        "registry_chunks": registry.chunk_count(),
        "bm25_chunks": len(bm25),
    }
    try:
        counts["milvus_chunks"] = vectors.count()
    except Exception as exc:  # a Milvus server may be down while the app runs
        counts["milvus_chunks"] = f"unavailable: {exc}"
    return counts


def _retrieval(kb: KnowledgeBase, top_k: int) -> dict[str, Any]:
    """The threshold and fusion the retriever applies now (calibrated or configured)."""
    retriever = kb.ready_retriever()
    f = retriever.fusion.settings
    return {
        "threshold": retriever.threshold.describe(),
        "fusion": f"{f.method}, dense {f.dense_weight:g} / bm25 {f.bm25_weight:g}",
        "top_k": top_k,
    }


def build_status(
    settings: Settings,
    kb: KnowledgeBase,
    *,
    llm_loaded: bool,
    queued_jobs: int,
    sync: dict[str, Any],
    calibration: dict[str, Any],
    jobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    llm = settings.llm
    llm_info: dict[str, Any] = {"backend": llm.backend, "loaded": llm_loaded}
    if llm.backend == "openai":
        llm_info.update(model=llm.openai_model, base_url=redact_uri(llm.base_url))
    else:
        llm_info.update(model=llm.model)
    return {
        "embedder": {"model": settings.embedder.model, "runtime": settings.embedder.runtime,
                     "dim": kb.embedder.dim if kb.embedder.is_warm else None,
                     # what the encoder computes in (bf16 on OpenVINO where the CPU has it); not every
                     # embedder says
                     "precision": getattr(kb.embedder, "precision", None) if kb.embedder.is_warm else None},
        "llm": llm_info,
        "milvus": {
            "uri": redact_uri(settings.milvus_uri),
            "mode": "Milvus Lite (embedded file)" if settings.is_milvus_lite else "Milvus server",
            "collection": settings.milvus_settings.collection,
        },
        "keyword_search": {
            "local": "in process (BM25 files in the data directory)",
            "milvus": "Milvus full-text search (BM25 in the chunks collection)",
            "none": "off (dense retrieval only)",
        }[settings.bm25.backend],
        "state_database": kb.stores()[0].db.display_url(),
        "retrieval": _retrieval(kb, settings.retrieval.top_k),
        "calibration": calibration,
        "counts": store_counts(kb),
        "ingestion_queue": queued_jobs,
        "recent_jobs": [  # every replica's (the state database's), newest first
            {k: j.get(k) for k in ("kind", "state", "stage", "done", "total", "error", "holder", "created_at")}
            for j in (jobs or [])
        ],
        "sync": sync,
        "data_dir": str(settings.data_dir),
    }
