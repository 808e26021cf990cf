"""Write chunks to Milvus (vectors) and the BM25 index in step, keyed by content hashes.

Order of writes, chosen so that a crash at any point leaves only *extra* rows in the stores, never
a registry entry pointing at missing chunks: (1) new chunks into Milvus and BM25, (2) one registry
transaction naming the source's new chunk ids, (3) deletion of the chunks it no longer holds.
``check()`` removes whatever a crash left behind.

A rename is re-pointed in the registry first (one transaction that also journals the source in
``stale_meta``), then the Milvus rows are rewritten with the new source; ``check()`` finishes a
rewrite a crash interrupted. ``sync_folder`` runs ``check()`` before anything else, so a sync
killed at any point converges on the next run.

Writes to the stores are serialised by the state database's writers' lock, held per batch (not
per run) and across processes and replicas, so a folder sync, an upload and ``check()`` can interleave
without ``check()`` mistaking another writer's not-yet-registered chunks for orphans. Whether a file
is new or a duplicate is decided again under that lock, just before its batch is written: another
replica may have indexed the same content since.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.chunking import Chunker
from ingest.files import sha256_file
from ingest.loaders import SUPPORTED_EXTENSIONS, LoadError, load_bytes
from ingest.loaders.detect import stem
from ingest.memory import release_free_heap
from ingest.registry import DocumentRecord, Registry
from ingest.stores.bm25_index import BM25Index
from ingest.stores.protocols import WritableVectorStore
from ingest.sync import SYNC_LEASE, SyncLock
from ingest.text_tokenizer import BM25Tokenizer
from ingest.types import INDEX_FORMAT, Chunk, IngestReport, LoadedDocument, sha256_hex

log = logging.getLogger(__name__)


class DocumentEmbedder(Protocol):
    """What the indexer needs from the embedder (``ingest.embedding.Embedder`` provides it)."""

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class IngestEvent:
    """One step of progress: a file was handled (``status`` says how) — for bars and the UI."""

    source: str
    status: str  # "indexed" | "unchanged" | "duplicate" | "failed" | "skipped" | "removed" | "renamed"
    detail: str = ""
    done: int = 0
    total: int | None = None


ProgressCallback = Callable[[IngestEvent], None]


class _Progress:
    """Numbers one run's events and hands them to the caller's callback, if any."""

    def __init__(self, callback: ProgressCallback | None, total: int | None) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def __call__(self, source: str, status: str, detail: str = "") -> None:
        self.done += 1
        if self.callback:
            self.callback(IngestEvent(source, status, detail, self.done, self.total))


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
    """Chunk counts of the three stores (after any repair) and what the check found and fixed."""

    registry: int
    milvus: int
    bm25: int
    # Found when checked, before any repair:
    orphans: int = 0  # ids in Milvus or BM25 that the registry does not list
    missing_vectors: int = 0  # registry ids absent from Milvus
    missing_bm25: int = 0  # registry ids absent from BM25
    stale_sources: int = 0  # renamed sources whose Milvus rows may still carry the old name
    # Done by ``check(repair=True)``:
    repaired: bool = False
    orphans_removed: int = 0  # ids in a store but not in the registry
    bm25_restored: int = 0  # registry ids missing from BM25, rebuilt from Milvus text
    documents_dropped: list[str] = field(default_factory=list)  # missing vectors: re-index needed
    sources_relabelled: int = 0  # renamed sources whose Milvus rows were rewritten

    @property
    def consistent(self) -> bool:
        """The stores agreed when checked: nothing was found (and so nothing repaired: every
        repair counter is bounded by the finding it repairs)."""
        return self.registry == self.milvus == self.bm25 and not (
            self.orphans or self.missing_vectors or self.missing_bm25 or self.stale_sources
        )

    @property
    def agree_now(self) -> bool:
        """The stores agree after this check (always the case after a successful repair)."""
        return self.consistent or (self.repaired and self.registry == self.milvus == self.bm25)


class Indexer:
    """Ingests files, bytes and documents into the vector store, BM25 and the registry in step.

    Every collaborator comes in through the constructor, typed by what the indexer uses of it
    (``DocumentEmbedder``, ``ingest.stores.protocols.WritableVectorStore``): the application passes
    the e5 ``Embedder`` and Milvus, a unit test an in-memory embedder and vector store.

    ``bm25``: the in-process keyword index written beside the vector store; ``None`` when the vector
    store indexes keywords itself (Milvus full-text search, ``bm25.backend: milvus``): the chunk's
    tokens then go into the same ``upsert`` as its vector, one write for both searches."""

    def __init__(
        self,
        embedder: DocumentEmbedder,
        chunker: Chunker,
        vectors: WritableVectorStore,
        bm25: BM25Index | None,
        tokenizer: BM25Tokenizer,
        registry: Registry,
        # Chunks buffered before one embed + write: the embedder sorts each buffer by length, so a
        # larger buffer pads less (64 cost ~13% of embedding time against one sorted call, measured).
        batch_chunks: int = 256,
        load: Callable[[bytes, str], LoadedDocument] = load_bytes,
    ) -> None:
        self.embedder = embedder
        self.chunker = chunker
        self.vectors = vectors
        self.bm25 = bm25
        self.tokenizer = tokenizer
        self.registry = registry
        self.batch_chunks = batch_chunks
        self.load = load  # bytes + name -> document (a configured ``DocumentLoader`` in the app)
        # Store writes are serialised per batch across threads, processes and replicas (the state
        # database's writers' lock), so no writer's check() takes another's unregistered chunks for orphans.
        self._write_lock = registry.db.write_lock()

    # --- entry points ---------------------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[str | Path], progress: ProgressCallback | None = None) -> IngestReport:
        report = IngestReport()
        files: list[Path] = []
        for path in paths:
            if not Path(path).exists():
                report.failed.append((str(path), "no such file or folder"))
                continue
            # Absolute, symlink-free sources: the same file always has the same source, whatever
            # the working directory or spelling used, so syncs and re-ingestion recognise it.
            found, skipped = expand_paths(Path(path).expanduser().resolve())
            files.extend(found)
            report.skipped.extend(skipped)
        return self.ingest(
            (self._file_candidate(f, report) for f in files), progress, total=len(files), report=report
        )

    def ingest_bytes(
        self, name: str, data: bytes, progress: ProgressCallback | None = None, *, sha256: str | None = None
    ) -> IngestReport:
        """Ingest in-memory bytes. ``sha256``: their hex digest when the caller already has it (the
        upload store hashes uploads to name them), saving this hash; the loader still derives the
        recorded doc_id from the bytes, so a wrong digest only misjudges "unchanged"/"duplicate"."""
        digest = sha256 if sha256 is not None else sha256_hex(data)
        candidate = _Candidate(name, digest, lambda: self.load(data, name))
        return self.ingest([candidate], progress, total=1)

    def ingest_documents(
        self, docs: Iterable[LoadedDocument], progress: ProgressCallback | None = None, total: int | None = None
    ) -> IngestReport:
        return self.ingest((_Candidate(d.source, d.doc_id, _already_loaded(d)) for d in docs), progress, total)

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
        emit = _Progress(progress, total)

        def flush() -> None:
            nonlocal buffer, buffered
            if buffer:
                for source, status, detail in self._write(buffer, report):
                    emit(source, status, detail)
            buffer, buffered = [], 0
            # Without this, freed batch memory stays in malloc's heaps and resident memory grows
            # with the volume ingested (BENCHMARKS.md, "Peak memory against corpus size").
            release_free_heap()

        try:
            for cand in candidates:
                if cand is None:  # unreadable file, already reported
                    source, reason = report.failed[-1]
                    emit(source, "failed", reason)
                    continue
                with self._write_lock:  # may remove a record (content moved to a duplicate)
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
            self._flush_stores()
        return report

    def import_document(self, record: DocumentRecord, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Write a document whose chunks are already embedded (a knowledge base moved to other
        stores: ``rag-ingest --migrate-from``), through the same write path as ingestion: stores
        first, then the registry, under the writers' lock. Its date stays the original's."""
        tokens = self.tokenizer.tokenize_many([c.indexed_text for c in chunks])
        ids = [c.chunk_id for c in chunks]
        with self._write_lock:
            self._upsert(chunks, vectors, tokens)
            stale = self.registry.put(
                record.source, record.doc_id, record.file_type, record.title, ids, indexed_at=record.indexed_at,
                index_format=record.index_format,
            )
            self._delete_chunks(stale)

    def delete_sources(self, sources: Iterable[str]) -> int:
        """Remove documents from the registry and both stores; returns chunks removed."""
        sources = list(sources)
        with self._write_lock:
            ids = self.registry.remove(sources)  # registry first: a crash leaves only orphans
            self._delete_chunks(ids)
        self._flush_stores()
        return len(ids)

    def sync_folder(self, folder: str | Path, progress: ProgressCallback | None = None) -> IngestReport:
        """Make the index mirror ``folder``: re-point moved/renamed files (same content, no
        re-embedding), remove sources whose files are gone, index new and changed files.

        Only registered sources under ``folder`` are touched. Raises ``SyncInProgressError`` if
        another sync of this data directory is running, ``NotADirectoryError`` if ``folder`` is
        missing (never "everything was deleted": an unmounted share must not empty the index)."""
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"sync folder {root} does not exist or is not a folder")
        with SyncLock(self.registry.db, name=self.registry.scoped_name(SYNC_LEASE)):
            report = IngestReport()
            # A previous run may have been killed half-way: converge first.
            repaired = self.check(repair=True)
            if not repaired.consistent:
                log.warning("sync: repaired drift between the stores first (an interrupted run?): %s", repaired)
            listing = list_folder(root)
            if root in listing.unreadable or not root.is_dir():
                # It vanished after the check above (an unmount, a rename): nothing is known gone.
                raise NotADirectoryError(f"sync folder {root} does not exist or is not a folder")
            if listing.unreadable:
                log.warning("sync: %d folder(s) could not be read; their documents are kept as they were: %s",
                            len(listing.unreadable), ", ".join(map(str, listing.unreadable[:5])))
            files = listing.files
            report.skipped.extend(listing.skipped)
            current = {str(f): f for f in files}
            tracked = [d for d in self.registry.documents() if _is_under(d.source, root)]
            gone = [
                d for d in tracked
                if d.source not in current and not any(_is_under(d.source, u) for u in listing.unreadable)
            ]
            emit = _Progress(progress, None)

            moved_to: set[str] = set()
            if gone:
                for old, new in self._match_renames(gone, current):
                    self._rename(old, new)
                    moved_to.add(new)
                    report.renamed.append((old.source, new))
                    emit(new, "renamed", f"moved from {old.source}")
                moved_from = {old for old, _ in report.renamed}
                deleted = [d.source for d in gone if d.source not in moved_from]
                if deleted:
                    with self._write_lock:
                        ids = self.registry.remove(deleted)
                        self._delete_chunks(ids)
                    report.removed.extend(deleted)
                    report.chunks_removed += len(ids)
                    for source in deleted:
                        emit(source, "removed", "file no longer in the folder")
                self._flush_stores()
            todo = [f for f in files if str(f) not in moved_to]
            self.ingest((self._file_candidate(f, report) for f in todo), progress, total=len(todo), report=report)
        log.info(
            "sync of %s: %d indexed, %d unchanged, %d renamed, %d removed, %d failed",
            root, len(report.indexed), len(report.unchanged), len(report.renamed), len(report.removed),
            len(report.failed),
        )
        return report

    # --- consistency ------------------------------------------------------------------------------
    def check(self, repair: bool = True) -> ConsistencyReport:
        """Compare the chunk ids of the registry, Milvus and BM25; with ``repair``, make them equal."""
        with self._write_lock:
            return self._check(repair)

    def _check(self, repair: bool) -> ConsistencyReport:
        reg = self.registry.chunk_ids()
        mil = self.vectors.all_ids()
        bm = self.bm25.ids() if self.bm25 is not None else mil
        stale = self.registry.stale_meta_sources()
        report = ConsistencyReport(
            registry=len(reg),
            milvus=len(mil),
            bm25=len(bm),
            orphans=len((mil | bm) - reg),
            missing_vectors=len(reg - mil),
            missing_bm25=len(reg - bm),
            stale_sources=len(stale),
        )
        if not repair:
            return report
        report.repaired = True
        orphans_m, orphans_b = mil - reg, bm - reg
        if orphans_m:
            self.vectors.delete(orphans_m)
        if orphans_b and self.bm25 is not None:
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
        missing_bm25 = reg - self.bm25.ids() if self.bm25 is not None else set()
        if missing_bm25 and self.bm25 is not None:
            texts = self.vectors.get_indexed_texts(sorted(missing_bm25))
            ids = list(texts)
            self.bm25.add(ids, self.tokenizer.tokenize_many([texts[i] for i in ids]))
            report.bm25_restored = len(ids)
        for source in self.registry.stale_meta_sources():  # renames a crash interrupted
            self.vectors.set_source(self.registry.ordered_chunk_ids(source), source)
            self.registry.clear_stale_meta([source])
            report.sources_relabelled += 1
        self._flush_stores()
        report.registry = self.registry.chunk_count()
        report.milvus = self.vectors.count()
        report.bm25 = len(self.bm25) if self.bm25 is not None else report.milvus
        return report

    # --- internals --------------------------------------------------------------------------------
    def _match_renames(
        self, gone: list[DocumentRecord], current: dict[str, Path]
    ) -> list[tuple[DocumentRecord, str]]:
        """Pairs (vanished record, new unregistered file with the same content hash)."""
        by_hash: dict[str, list[DocumentRecord]] = {}
        for record in gone:
            by_hash.setdefault(record.doc_id, []).append(record)
        pairs: list[tuple[DocumentRecord, str]] = []
        for source, path in current.items():
            if self.registry.get(source) is not None:
                continue  # registered files are handled (as changed or unchanged) by ingestion
            try:
                digest = sha256_file(path)  # == sha256_hex(path.read_bytes()), streamed
            except OSError:
                continue  # unreadable: ingestion reports it
            matches = by_hash.get(digest)
            if matches:
                pairs.append((matches.pop(0), source))
        return pairs

    def _rename(self, old: DocumentRecord, new: str) -> None:
        # A title that was only the file name follows the file; a real title stays.
        title = stem(new) if old.title == stem(old.source) else None
        with self._write_lock:
            ids = self.registry.rename(old.source, new, title=title)  # journals ``new`` as stale
            self.vectors.set_source(self.registry.ordered_chunk_ids(new), new)
            self.registry.clear_stale_meta([new])
        log.info("renamed %s -> %s (%d chunks kept)", old.source, new, len(ids))

    def _file_candidate(self, path: Path, report: IngestReport) -> _Candidate | None:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.failed.append((source, f"cannot read file: {exc.strerror or exc}"))
            return None
        return _Candidate(source, sha256_hex(data), lambda: self.load(data, source))

    def _classify(
        self, cand: _Candidate, pending_ids: dict[str, str], report: IngestReport
    ) -> tuple[str, str] | None:
        """'unchanged' or 'duplicate' without parsing the file; None when it must be indexed."""
        record = self.registry.get(cand.source)
        if record is not None and record.doc_id == cand.doc_id and record.index_format >= INDEX_FORMAT:
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

    def _write(self, batch: list[_Pending], report: IngestReport) -> list[tuple[str, str, str]]:
        chunks = [c for p in batch for c in p.chunks]
        # Embedding is the slow part and touches no store: done outside the write lock.
        vectors = self.embedder.embed_documents([c.indexed_text for c in chunks])
        tokens = self.tokenizer.tokenize_many([c.indexed_text for c in chunks])
        events: list[tuple[str, str, str]] = []
        with self._write_lock:
            self._upsert(chunks, vectors, tokens)
            for pending in batch:
                doc = pending.doc
                original = self.registry.source_of(doc.doc_id)
                if original is not None and original != doc.source:  # another writer was first
                    # The chunks just written are that document's (same content, same ids); what
                    # this source held before, if anything, is other content and goes.
                    removed = self.registry.remove([doc.source])
                    self._delete_chunks(removed)
                    if removed:
                        report.removed.append(doc.source)
                        report.chunks_removed += len(removed)
                    report.duplicates.append((doc.source, original))
                    events.append((doc.source, "duplicate", f"same content as {original}"))
                    continue
                ids = [c.chunk_id for c in pending.chunks]
                stale = self.registry.put(doc.source, doc.doc_id, doc.file_type, doc.title, ids)
                self._delete_chunks(stale)
                report.indexed.append(doc.source)
                report.notes.extend((doc.source, note) for note in doc.notes)
                report.chunks_added += len(ids)
                report.chunks_removed += len(stale)
                events.append((doc.source, "indexed", "; ".join((f"{len(ids)} chunks", *doc.notes))))
        return events

    def _upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray, tokens: Sequence[Sequence[str]]) -> None:
        if self.bm25 is None:  # the vector store indexes the tokens in the same write
            self.vectors.upsert(chunks, vectors, keywords=tokens)
        else:
            self.vectors.upsert(chunks, vectors)
            self.bm25.add([c.chunk_id for c in chunks], tokens)

    def _delete_chunks(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.vectors.delete(ids)
            if self.bm25 is not None:
                self.bm25.delete(ids)

    def _flush_stores(self) -> None:
        if self.bm25 is not None:
            self.bm25.save()
        self.vectors.flush()


def _already_loaded(doc: LoadedDocument) -> Callable[[], LoadedDocument]:
    """The loader of a document that needs no loading."""
    return lambda: doc


def _is_under(source: str, root: Path) -> bool:
    """Whether a registered source is a file path inside ``root`` (uploads and BEIR ids are not)."""
    p = Path(source)
    return p.is_absolute() and p != root and p.is_relative_to(root)


def expand_paths(path: str | Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to ingest under ``path`` (recursively, hidden entries skipped) and the skipped ones."""
    root = Path(path)
    if root.is_file():
        if root.suffix.lower() in SUPPORTED_EXTENSIONS:
            return [root], []
        return [], [(str(root), f"unsupported file type '{root.suffix or 'no extension'}'")]
    if not root.is_dir():
        return [], [(str(root), "not a regular file or folder")]
    listing = list_folder(root)
    return listing.files, listing.skipped


@dataclass
class FolderListing:
    """What a walk of a folder found: files to ingest, files skipped (with why), and the folders
    it could not read (vanished or unreadable while it walked: their files are unknown, not gone)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)


def list_folder(root: Path) -> FolderListing:
    listing = FolderListing()

    def unreadable(error: OSError) -> None:
        where = Path(error.filename) if error.filename else root
        listing.unreadable.append(where)
        listing.skipped.append((str(where), f"folder could not be read ({error.strerror or error})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in SUPPORTED_EXTENSIONS:
                listing.files.append(p)
            else:
                listing.skipped.append((str(p), f"unsupported file type '{p.suffix or 'no extension'}'"))
    return listing
