"""Move a knowledge base to other stores without re-embedding: ``rag-ingest --migrate-from``.

The usual move is from the embedded default (Milvus Lite file, in-process BM25 files, SQLite
registry) to the server shape (a Milvus 2.5 server with full-text search, PostgreSQL), but any
pair of configurations works. Vectors and texts are read from the old Milvus collection, keyword
tokens are made again from the texts by the same tokenizer (so keyword search ranks as before:
BENCHMARKS.md, "BM25 backends"), and each document is written through the target indexer's own
write path: stores first, then its registry row, under the writers' lock.

Resumable: a document already in the target registry with the same content hash is skipped, and a
run cut short leaves at most chunks without a registry row, which the next run rewrites (same ids)
or the closing consistency check removes. The old stores are only read.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ingest.indexer import ConsistencyReport, Indexer
from ingest.registry import DocumentRecord, Registry
from ingest.state import StateDatabase
from ingest.stores.milvus_store import MilvusVectorStore
from rag_app.config import Settings

from .knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

MigrationProgress = Callable[[int, int, str], None]  # (documents done, documents in all, source)


@dataclass
class MigrationReport:
    documents: int = 0  # in the old registry
    copied: int = 0
    already_there: int = 0  # skipped: the target holds the same content under that source
    chunks_copied: int = 0
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (source, why) left behind
    check: ConsistencyReport | None = None  # the target's stores after the move


def same_stores(a: Settings, b: Settings) -> bool:
    """Whether two configurations name the same Milvus collection and the same state database."""
    return (a.milvus_uri, a.milvus_settings.collection) == (b.milvus_uri, b.milvus_settings.collection) or (
        a.database_url == b.database_url
    )


def migrate(source: Settings, target: KnowledgeBase, progress: MigrationProgress | None = None) -> MigrationReport:
    """Copy every document of the knowledge base ``source`` describes into ``target`` (warmed up)."""
    if same_stores(source, target.settings):
        raise ValueError(
            "the old and new configurations share a Milvus collection or a state database: point the"
            " new one at another collection (milvus.collection) and database (database.url)"
        )
    registry, _, _ = target.stores()
    indexer = target.ready_indexer()
    old_registry = Registry(StateDatabase(source.database_url))
    old_vectors = MilvusVectorStore(source.milvus, source.milvus_uri, target.embedder.dim)
    report = MigrationReport()
    try:
        old_vectors.warm_up()
        records = old_registry.documents()
        report.documents = len(records)
        for done, record in enumerate(records, start=1):
            _copy(record, old_registry, old_vectors, registry, indexer, report)
            if progress is not None:
                progress(done, len(records), record.source)
        report.check = indexer.check(repair=True)
    finally:
        old_vectors.close()
        old_registry.close()
    log.info(
        "migration: %d documents, %d copied (%d chunks), %d already there, %d incomplete",
        report.documents, report.copied, report.chunks_copied, report.already_there, len(report.incomplete),
    )
    return report


def _copy(
    record: DocumentRecord,
    old_registry: Registry,
    old_vectors: MilvusVectorStore,
    registry: Registry,
    indexer: Indexer,
    report: MigrationReport,
) -> None:
    there = registry.get(record.source)
    if there is not None and there.doc_id == record.doc_id:
        report.already_there += 1
        return
    ids = old_registry.ordered_chunk_ids(record.source)
    rows = old_vectors.fetch(ids)
    missing = [cid for cid in ids if cid not in rows]
    if missing:
        report.incomplete.append(
            (record.source, f"{len(missing)} of {len(ids)} chunks are missing from the old Milvus"
             " collection (run rag-ingest --check on the old configuration, then index it again)")
        )
        return
    # A rename the old stores had not finished writing to Milvus is finished here: the source is the registry's.
    chunks = [dataclasses.replace(rows[cid][0], source=record.source) for cid in ids]
    vectors = np.stack([rows[cid][1] for cid in ids]) if ids else np.zeros((0, old_vectors.dim), np.float32)
    indexer.import_document(record, chunks, vectors)
    report.copied += 1
    report.chunks_copied += len(ids)

