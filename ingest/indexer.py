"""Write chunks to Milvus (vectors) and the BM25 index in step, keyed by content hashes.

Order of writes, chosen so that a crash at any point leaves only *extra* rows in the stores, never
a registry entry pointing at missing chunks: (1) new chunks into Milvus and BM25, (2) one registry
transaction naming the source's new chunk ids, (3) deletion of the chunks it no longer holds.
``check()`` removes whatever a crash left behind.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from ingest.chunking import Chunker
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadError, load_bytes
from ingest.registry import Registry
from ingest.stores.bm25_index import BM25Index
from ingest.stores.milvus_store import MilvusVectorStore
from ingest.text_tokenizer import BM25Tokenizer
from ingest.types import Chunk, IngestReport, LoadedDocument, sha256_hex

log = logging.getLogger(__name__)


class DocumentEmbedder(Protocol):
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class IngestEvent:
    """One step of progress: a file was handled (``status`` says how) — for bars and the UI."""

    source: str
    status: str  # "indexed" | "unchanged" | "duplicate" | "failed" | "skipped" | "removed"
    detail: str = ""
    done: int = 0
    total: int | None = None


ProgressCallback = Callable[[IngestEvent], None]


@dataclass
class _Candidate:
    source: str
    doc_id: str
    load: Callable[[], LoadedDocument]


@dataclass
class _Pending:
    doc: LoadedDocument
    chunks: list[Chunk]


@dataclass
class ConsistencyReport:
    registry: int
    milvus: int
    bm25: int
    orphans_removed: int = 0  # ids in a store but not in the registry
    bm25_restored: int = 0  # registry ids missing from BM25, rebuilt from Milvus text
    documents_dropped: list[str] = field(default_factory=list)  # missing vectors: re-index needed

    @property
    def consistent(self) -> bool:
        return self.registry == self.milvus == self.bm25 and not (
            self.orphans_removed or self.bm25_restored or self.documents_dropped
        )


class Indexer:
    def __init__(
        self,
        embedder: DocumentEmbedder,
        chunker: Chunker,
        vectors: MilvusVectorStore,
        bm25: BM25Index,
        tokenizer: BM25Tokenizer,
        registry: Registry,
        batch_chunks: int = 64,
    ) -> None:
        self.embedder = embedder
        self.chunker = chunker
        self.vectors = vectors
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.registry = registry
        self.batch_chunks = batch_chunks

    # --- entry points ---------------------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[str | Path], progress: ProgressCallback | None = None) -> IngestReport:
        report = IngestReport()
        files: list[Path] = []
        for path in paths:
            if not Path(path).exists():
                report.failed.append((str(path), "no such file or folder"))
                continue
            found, skipped = expand_paths(path)
            files.extend(found)
            report.skipped.extend(skipped)
        return self.ingest(
            (self._file_candidate(f, report) for f in files), progress, total=len(files), report=report
        )

    def ingest_bytes(self, name: str, data: bytes, progress: ProgressCallback | None = None) -> IngestReport:
        candidate = _Candidate(name, sha256_hex(data), lambda: load_bytes(data, name))
        return self.ingest([candidate], progress, total=1)

    def ingest_documents(
        self, docs: Iterable[LoadedDocument], progress: ProgressCallback | None = None, total: int | None = None
    ) -> IngestReport:
        return self.ingest((_Candidate(d.source, d.doc_id, lambda d=d: d) for d in docs), progress, total)

    def ingest(
        self,
        candidates: Iterable[_Candidate | None],
        progress: ProgressCallback | None = None,
        total: int | None = None,
        report: IngestReport | None = None,
    ) -> IngestReport:
        report = report or IngestReport()
        buffer: list[_Pending] = []
        buffered = 0
        pending_ids: dict[str, str] = {}  # doc_id -> source, for duplicates inside one run
        done = 0

        def emit(source: str, status: str, detail: str = "") -> None:
            nonlocal done
            done += 1
            if progress:
                progress(IngestEvent(source, status, detail, done, total))

        def flush() -> None:
            nonlocal buffer, buffered
            if buffer:
                for source, status, detail in self._write(buffer, report):
                    emit(source, status, detail)
            buffer, buffered = [], 0

        try:
            for cand in candidates:
                if cand is None:  # unreadable file, already reported
                    source, reason = report.failed[-1]
                    emit(source, "failed", reason)
                    continue
                status = self._classify(cand, pending_ids, report)
                if status is not None:
                    emit(cand.source, *status)
                    continue
                try:
                    doc = cand.load()
                    chunks = self.chunker.chunk(doc)
                except LoadError as exc:
                    report.failed.append((cand.source, exc.reason))
                    emit(cand.source, "failed", exc.reason)
                    continue
                if not chunks:
                    reason = "no indexable text after chunking"
                    report.failed.append((cand.source, reason))
                    emit(cand.source, "failed", reason)
                    continue
                pending_ids[cand.doc_id] = cand.source
                buffer.append(_Pending(doc, chunks))
                buffered += len(chunks)
                if buffered >= self.batch_chunks:
                    flush()
            flush()
        finally:
            self.bm25.save()
            self.vectors.flush()
        return report

    def delete_sources(self, sources: Iterable[str]) -> int:
        """Remove documents from the registry and both stores; returns chunks removed."""
        sources = list(sources)
        ids = self.registry.remove(sources)
        self._delete_chunks(ids)
        self.bm25.save()
        return len(ids)

    # --- consistency ------------------------------------------------------------------------------
    def check(self, repair: bool = True) -> ConsistencyReport:
        """Compare the chunk ids of the registry, Milvus and BM25; with ``repair``, make them equal."""
        reg = self.registry.chunk_ids()
        mil = self.vectors.all_ids()
        bm = self.bm25.ids()
        report = ConsistencyReport(registry=len(reg), milvus=len(mil), bm25=len(bm))
        if not repair:
            return report
        orphans_m, orphans_b = mil - reg, bm - reg
        if orphans_m:
            self.vectors.delete(orphans_m)
        if orphans_b:
            self.bm25.delete(orphans_b)
        report.orphans_removed = len(orphans_m | orphans_b)
        missing_vectors = reg - mil
        if missing_vectors:
            # Vectors cannot be recreated without the source file: forget those documents so the
            # next ingestion of their folder indexes them again.
            lost_sources = {
                d.source for d in self.registry.documents() if self.registry.chunk_ids(d.source) & missing_vectors
            }
            dropped = self.registry.remove(lost_sources)
            self._delete_chunks(dropped)
            report.documents_dropped = sorted(lost_sources)
            reg -= dropped
        missing_bm25 = reg - self.bm25.ids()
        if missing_bm25:
            texts = self.vectors.get_texts(sorted(missing_bm25))
            ids = list(texts)
            self.bm25.add(ids, self.tokenizer.tokenize_many([texts[i] for i in ids]))
            report.bm25_restored = len(ids)
        self.bm25.save()
        self.vectors.flush()
        report.registry = self.registry.chunk_count()
        report.milvus = self.vectors.count()
        report.bm25 = len(self.bm25)
        return report

    # --- internals --------------------------------------------------------------------------------
    def _file_candidate(self, path: Path, report: IngestReport) -> _Candidate | None:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.failed.append((source, f"cannot read file: {exc.strerror or exc}"))
            return None
        return _Candidate(source, sha256_hex(data), lambda: load_bytes(data, source))

    def _classify(
        self, cand: _Candidate, pending_ids: dict[str, str], report: IngestReport
    ) -> tuple[str, str] | None:
        """'unchanged' or 'duplicate' without parsing the file; None when it must be indexed."""
        record = self.registry.get(cand.source)
        if record is not None and record.doc_id == cand.doc_id:
            report.unchanged.append(cand.source)
            return ("unchanged", "")
        original = pending_ids.get(cand.doc_id) or self.registry.source_of(cand.doc_id)
        if original is not None and original != cand.source:
            if record is not None:  # this source now holds another document's content
                removed = self.registry.remove([cand.source])
                self._delete_chunks(removed)
                report.removed.append(cand.source)
                report.chunks_removed += len(removed)
            report.duplicates.append((cand.source, original))
            return ("duplicate", f"same content as {original}")
        return None

    def _write(self, batch: list[_Pending], report: IngestReport) -> Iterator[tuple[str, str, str]]:
        chunks = [c for p in batch for c in p.chunks]
        vectors = self.embedder.embed_documents([c.text for c in chunks])
        self.vectors.upsert(chunks, vectors)
        self.bm25.add([c.chunk_id for c in chunks], self.tokenizer.tokenize_many([c.text for c in chunks]))
        for pending in batch:
            doc = pending.doc
            ids = [c.chunk_id for c in pending.chunks]
            stale = self.registry.put(doc.source, doc.doc_id, doc.file_type, doc.title, ids)
            self._delete_chunks(stale)
            report.indexed.append(doc.source)
            report.chunks_added += len(ids)
            report.chunks_removed += len(stale)
            yield doc.source, "indexed", f"{len(ids)} chunks"

    def _delete_chunks(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.vectors.delete(ids)
            self.bm25.delete(ids)


def expand_paths(path: str | Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to ingest under ``path`` (recursively, hidden entries skipped) and the skipped ones."""
    root = Path(path)
    if root.is_file():
        if root.suffix.lower() in SUPPORTED_EXTENSIONS:
            return [root], []
        return [], [(str(root), f"unsupported file type '{root.suffix or 'no extension'}'")]
    if not root.is_dir():
        return [], [(str(root), "not a regular file or folder")]
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in SUPPORTED_EXTENSIONS:
                found.append(p)
            else:
                skipped.append((str(p), f"unsupported file type '{p.suffix or 'no extension'}'"))
    return found, skipped
