"""What the UI and the JSON API share: uploads on disk, one background ingestion worker, status.

Every write to the knowledge base (upload, re-index, delete) goes through one worker thread, one job
at a time in arrival order: the indexer is not designed for concurrent writers, and chat requests
(which only read) are never blocked behind an ingestion.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import queue
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from ingest.indexer import IngestEvent
from ingest.loaders import LoadError, precheck_upload
from rag_app.answering import Answerer
from rag_app.answering.prompt import source_label
from rag_app.config import Settings
from rag_app.knowledge_base import KnowledgeBase
from rag_app.scheduler import SyncScheduler
from rag_app.tuning.model_store import TunedModelStore
from rag_app.tuning.pipeline import run_tuning

log = logging.getLogger(__name__)

_UNSAFE_CHARS = re.compile(r"[^\w.\-()+ ]+", re.UNICODE)
# UTF-8 bytes, not characters: 80 CJK characters are 240 bytes, and with "-<hash>.<ext>" a stored
# name must stay under the 255-byte limit of most file systems.
_MAX_NAME_BYTES = 120
# Device names Windows reserves whatever the extension ("CON.md"); harmless here, but the stored
# uploads folder may be copied or served to Windows machines.
_WINDOWS_RESERVED = re.compile(r"(?:con|prn|aux|nul|com[0-9]|lpt[0-9])", re.I)
_MB = 1024 * 1024
_HEAD_BYTES = 1024  # what content sniffing needs before a file is read in full


# --------------------------------------------------------------------------------------------------
# Uploads on disk
# --------------------------------------------------------------------------------------------------


def sanitize_filename(name: str) -> str:
    """A safe base name from a client-supplied file name: no directories, no control, format or
    shell characters, no leading dot or dash, no Windows device name, at most ``_MAX_NAME_BYTES``
    of UTF-8 stem, a lower-case ASCII extension. Never empty."""
    # Clients may send full paths with either separator ("C:\\Users\\me\\a.pdf", "../../etc/passwd").
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name or ""))[-1]
    # Category C: controls (NUL, newlines), format characters (RTL overrides that disguise
    # "txt.exe" as "exe.txt"), surrogates, private use, unassigned.
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = base.strip(" .")  # Windows drops trailing dots and spaces, so "a.md." would be "a.md"
    stem, dot, ext = base.rpartition(".")
    ext = re.sub(r"[^0-9a-z]", "", ext.lower())[:10] if dot else ""
    if not ext:  # no usable extension: a dot left in the stem must not read as one next time
        stem = base.replace(".", "_")
    stem = _UNSAFE_CHARS.sub("_", stem).strip(" ._-")
    stem = stem.encode("utf-8")[:_MAX_NAME_BYTES].decode("utf-8", "ignore").strip(" ._-") or "upload"
    if _WINDOWS_RESERVED.fullmatch(stem.split(".")[0].rstrip(" ")):
        stem = f"_{stem}"
    return f"{stem}.{ext}" if ext else stem


class UploadStore:
    """Uploaded files under ``<data_dir>/uploads/`` as ``<sanitised stem>-<content hash>.<ext>``.

    The content hash makes names unique (two "notes.md" never overwrite each other) and makes an
    identical re-upload land on the same path, so the indexer sees it as "unchanged".
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, name: str, data: bytes) -> Path:
        safe = sanitize_filename(name)
        stem, dot, ext = safe.rpartition(".")
        if not dot:
            stem, ext = safe, ""
        digest = hashlib.sha256(data).hexdigest()[:12]
        return self.root / (f"{stem}-{digest}.{ext}" if ext else f"{stem}-{digest}")

    def save(self, name: str, data: bytes) -> Path:
        path = self.path_for(name, data)
        if path.is_file() and path.stat().st_size == len(data):
            return path  # same content hash: already stored
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # atomic: a half-written file is never indexed
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def contains(self, source: str | Path) -> bool:
        try:
            return Path(source).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False

    def remove(self, source: str | Path) -> bool:
        """Delete a stored upload; refuses anything outside the uploads folder."""
        if not self.contains(source):
            return False
        Path(source).resolve().unlink(missing_ok=True)
        return True


def display_name(source: str) -> str:
    """The file name shown for a source; uploads without their content-hash suffix."""
    return source_label(source)


# --------------------------------------------------------------------------------------------------
# Jobs and the worker
# --------------------------------------------------------------------------------------------------


@dataclass
class FileResult:
    name: str  # what the user knows the file as
    status: str  # queued | indexing | indexed | unchanged | duplicate | failed | skipped | removed
    detail: str = ""
    source: str = ""  # the indexed source (stored path), when there is one

    def to_dict(self) -> dict[str, str]:
        return {"file": self.name, "status": self.status, "detail": self.detail, "source": self.source}


@dataclass
class IngestJob:
    kind: str  # upload | reindex | delete
    results: list[FileResult] = field(default_factory=list)
    state: str = "queued"  # queued | running | done | failed
    error: str = ""
    value: Any = None  # a job-specific result (chunks removed for a delete)
    id: int = field(default_factory=itertools.count(1).__next__)
    created: float = field(default_factory=time.time)
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> list[FileResult]:
        with self._lock:
            return [replace(r) for r in self.results]

    def set_result(self, index: int, **changes: str) -> None:
        with self._lock:
            self.results[index] = replace(self.results[index], **changes)

    def add_result(self, result: FileResult) -> None:
        with self._lock:
            self.results.append(result)

    @property
    def progress(self) -> tuple[int, int]:
        """(files finished, files in the job)."""
        with self._lock:
            finished = sum(r.status not in ("queued", "indexing") for r in self.results)
            return finished, len(self.results)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class IngestWorker:
    """One daemon thread running jobs in arrival order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[IngestJob, Callable[[IngestJob], None]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._thread.start()

    def submit(self, job: IngestJob, run: Callable[[IngestJob], None]) -> IngestJob:
        self._queue.put((job, run))
        return job

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, run = item
            job.state = "running"
            try:
                run(job)
                job.state = "done"
            except Exception as exc:  # the job reports; the worker must survive for the next one
                log.exception("%s job %d failed", job.kind, job.id)
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                for i, r in enumerate(job.snapshot()):
                    if r.status in ("queued", "indexing"):
                        job.set_result(i, status="failed", detail=job.error)
            finally:
                job.done.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)


@dataclass
class TuningRun:
    """A reranker tuning run in the background: its stage and progress, then its report."""

    generator: str
    state: str = "running"  # running | done | failed
    stage: str = "starting"
    done: int = 0
    total: int = 0
    detail: str = ""
    report: list[str] = field(default_factory=list)
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


# --------------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------------


# (client file name, the bytes, a temp file holding them (Gradio), or an open binary file (the API))
UploadInput = tuple[str, bytes | Path | IO[bytes]]


def redact_uri(uri: str) -> str:
    """A URI without user:password (Milvus and LLM URLs are shown in the Status tab)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RagService:
    """The knowledge base, the answerer, uploads and the ingestion worker, shared by UI and API."""

    def __init__(self, settings: Settings, kb: KnowledgeBase, answerer: Answerer) -> None:
        self.settings = settings
        self.kb = kb
        self.answerer = answerer
        self.uploads = UploadStore(settings.data_dir / "uploads")
        self.worker = IngestWorker()
        self._tuning: TuningRun | None = None
        self._tuning_lock = threading.Lock()
        self.max_bytes = settings.ui.max_upload_mb * 1024 * 1024
        # The folder sync runs in this process (Milvus Lite admits one process per file).
        self.scheduler = SyncScheduler(kb, settings.scheduler)
        if self.scheduler.folder:
            self.scheduler.start()

    def close(self) -> None:
        self.scheduler.shutdown()
        self.worker.stop()

    # --- reranker tuning (its own thread: it reads the knowledge base and can take an hour) -----------
    @property
    def tuned_models(self) -> TunedModelStore:
        return TunedModelStore(self.settings.data_dir)

    @property
    def tuning(self) -> TuningRun | None:
        return self._tuning

    def start_tuning(self, generator: str) -> TuningRun:
        with self._tuning_lock:
            if self._tuning is not None and self._tuning.state == "running":
                raise RuntimeError("a tuning run is already going; wait for it to finish")
            run = self._tuning = TuningRun(generator)
        threading.Thread(target=self._tune, args=(run,), name="reranker-tuning", daemon=True).start()
        return run

    def _tune(self, run: TuningRun) -> None:
        def progress(stage: str, done: int, total: int, detail: str) -> None:
            run.stage, run.done, run.total, run.detail = stage, done, total, detail

        try:
            settings = self.settings.tuning.model_copy(update={"generator": run.generator})
            report = run_tuning(self.kb, settings, llm=self.answerer.get_llm, progress=progress)
            if report.activated:
                self.kb.reload_reranker()
            run.report, run.state = report.lines(), "done"
        except Exception as exc:  # shown in the page; the app goes on with the reranker it had
            log.exception("reranker tuning failed")
            run.error, run.state = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            run.finished.set()

    def rollback_tuning(self) -> str:
        """Switch back to the tuned reranker that was on before (or none); returns its version."""
        previous = self.tuned_models.rollback()
        self.kb.reload_reranker()
        return previous.version if previous else "none"

    def sync_now(self, wait: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Run the configured folder sync now (queued behind a running one)."""
        if not self.scheduler.folder:
            raise RuntimeError("no sync folder configured (scheduler.folder)")
        return self.scheduler.run_now(wait=wait, timeout=timeout).as_dict()

    # --- writes (queued on the worker) --------------------------------------------------------------
    def submit_uploads(self, files: Sequence[UploadInput]) -> IngestJob:
        """Queue files for indexing; the job's results fill in per file as the worker goes.

        What a size, a name and the first KiB can refuse is refused here, before a file is read:
        more files than allowed, a file over the per-file limit, files beyond the per-request total,
        empty files, archives, unsupported types, executables or images under a document's name,
        plain text over the text limit. The rest is judged by the loaders in the worker."""
        job = IngestJob("upload")
        ui = self.settings.ui
        request_bytes = ui.max_request_mb * _MB
        accepted = 0
        work: list[tuple[int, str, bytes | Path | IO[bytes]]] = []
        for i, (name, data) in enumerate(files):
            shown = sanitize_filename(name)
            try:
                if i >= ui.max_files_per_request:
                    raise LoadError(f"more than {ui.max_files_per_request} files in one upload")
                size = _size(data)
                if size > self.max_bytes:
                    raise LoadError(f"{size / _MB:,.1f} MB is over the {ui.max_upload_mb} MB limit per file")
                precheck_upload(shown, size, _head(data), self.settings.loaders)
                if accepted + size > request_bytes:
                    raise LoadError(
                        f"the files of this upload together exceed the {ui.max_request_mb} MB limit per upload; "
                        "upload this one separately"
                    )
            except LoadError as exc:
                job.add_result(FileResult(shown, "failed", exc.reason))
                continue
            except OSError as exc:
                job.add_result(FileResult(shown, "failed", f"cannot read the upload: {exc.strerror or exc}"))
                continue
            accepted += size
            job.add_result(FileResult(shown, "queued"))
            work.append((len(job.results) - 1, name, data))
        return self.worker.submit(job, lambda j: self._run_uploads(j, work))

    def submit_reindex(self) -> IngestJob:
        """Queue a re-ingestion of every indexed file source that still exists on disk."""
        return self.worker.submit(IngestJob("reindex"), self._run_reindex)

    def delete(self, source: str, timeout: float | None = 300.0) -> int | None:
        """Remove a document from the registry, Milvus and BM25 (and its stored upload).

        Returns the chunks removed, or None when the source is not indexed.
        """
        job = self.worker.submit(IngestJob("delete"), lambda j: self._run_delete(j, source))
        if not job.wait(timeout):
            raise TimeoutError(f"deleting {source} is still queued behind other ingestion jobs")
        if job.state == "failed":
            raise RuntimeError(job.error)
        return job.value

    # --- reads -------------------------------------------------------------------------------------
    def documents(self) -> list[dict[str, Any]]:
        assert self.kb.registry is not None
        return [
            {
                "source": d.source,
                "file": display_name(d.source),
                "type": d.file_type,
                "title": d.title,
                "chunks": d.chunk_count,
                "indexed_at": d.indexed_at,
                "uploaded": self.uploads.contains(d.source),
            }
            for d in self.kb.registry.documents()
        ]

    def status(self) -> dict[str, Any]:
        """What runs where, and whether the three stores agree. Never secrets."""
        s = self.settings
        kb = self.kb
        assert kb.registry is not None and kb.vectors is not None and kb.bm25 is not None
        counts: dict[str, Any] = {
            "documents": len(kb.registry.documents()),
            "registry_chunks": kb.registry.chunk_count(),
            "bm25_chunks": len(kb.bm25),
        }
        try:
            counts["milvus_chunks"] = kb.vectors.count()
        except Exception as exc:  # a Milvus server may be down while the app runs
            counts["milvus_chunks"] = f"unavailable: {exc}"
        llm = s.llm
        llm_info: dict[str, Any] = {"backend": llm.backend, "loaded": self.answerer.llm_built}
        if llm.backend == "openai":
            llm_info.update(model=llm.openai_model, base_url=redact_uri(llm.base_url))
        else:
            llm_info.update(model=llm.model)
        return {
            "embedder": {"model": s.embedder.model, "dim": kb.embedder.dim if kb.embedder.is_warm else None},
            "llm": llm_info,
            "milvus": {
                "uri": redact_uri(s.milvus_uri),
                "mode": "Milvus Lite (embedded file)" if s.is_milvus_lite else "Milvus server",
                "collection": s.milvus.collection,
            },
            "retrieval": {
                "threshold": f"{s.retrieval.threshold.score} >= {s.retrieval.threshold.min_value}",
                "top_k": s.retrieval.top_k,
            },
            "counts": counts,
            "ingestion_queue": self.worker.pending,
            "sync": self.scheduler.status().as_dict(),
            "data_dir": str(s.data_dir),
        }

    # --- job bodies (worker thread) --------------------------------------------------------------------
    def _changed(self) -> None:
        # The retriever calibrates on a sample of the corpus: resample after the corpus changed.
        invalidate = getattr(self.kb.retriever, "invalidate_calibration", None)
        if invalidate is not None:
            invalidate()

    def _run_uploads(self, job: IngestJob, work: list[tuple[int, str, bytes | Path | IO[bytes]]]) -> None:
        assert self.kb.indexer is not None
        changed = False
        for index, name, data in work:
            job.set_result(index, status="indexing")
            try:
                # One file in memory at a time, and never more than the limit of it.
                payload = _read(data, self.max_bytes + 1)
                if len(payload) > self.max_bytes:  # a temp file may have grown since submit
                    raise ValueError(f"over the {self.settings.ui.max_upload_mb} MB limit per file")
                path = self.uploads.save(name, payload)
                del payload
            except (OSError, ValueError) as exc:
                job.set_result(index, status="failed", detail=str(exc))
                continue
            events: list[IngestEvent] = []
            report = self.kb.indexer.ingest_paths([path], events.append)
            event = events[-1] if events else None
            status = event.status if event else ("failed" if report.failed else "skipped")
            detail = event.detail if event else ""
            if status == "duplicate" and report.duplicates:
                detail = f"same content as {display_name(report.duplicates[-1][1])}"
            if status in ("failed", "duplicate", "skipped"):
                self.uploads.remove(path)  # not indexed under this path: do not keep the copy
                job.set_result(index, status=status, detail=detail)
            else:
                job.set_result(index, status=status, detail=detail, source=str(path))
            changed |= status == "indexed"
            log.info("upload %s -> %s (%s)", name, status, detail)
        if changed:
            self._changed()

    def _run_reindex(self, job: IngestJob) -> None:
        assert self.kb.indexer is not None and self.kb.registry is not None
        present: list[str] = []
        for doc in self.kb.registry.documents():
            if Path(doc.source).is_file():
                job.add_result(FileResult(display_name(doc.source), "queued", source=doc.source))
                present.append(doc.source)
            else:
                job.add_result(FileResult(display_name(doc.source), "skipped", "not found on disk", doc.source))
        index_of = {r.source: i for i, r in enumerate(job.snapshot())}

        def on_event(event: IngestEvent) -> None:
            i = index_of.get(event.source)
            if i is not None:
                job.set_result(i, status=event.status, detail=event.detail)

        if present:
            report = self.kb.indexer.ingest_paths(present, on_event)
            if report.indexed or report.removed:
                self._changed()

    def _run_delete(self, job: IngestJob, source: str) -> None:
        assert self.kb.indexer is not None and self.kb.registry is not None
        if self.kb.registry.get(source) is None:
            job.value = None
            return
        removed = self.kb.indexer.delete_sources([source])
        self.uploads.remove(source)  # only ever deletes inside <data_dir>/uploads
        job.value = removed
        job.add_result(FileResult(display_name(source), "removed", f"{removed} chunks", source))
        self._changed()
        log.info("deleted %s (%d chunks)", source, removed)


# --------------------------------------------------------------------------------------------------
# Reading an upload input (bytes, a temp file path, or an open binary file)
# --------------------------------------------------------------------------------------------------


def _size(data: bytes | Path | IO[bytes]) -> int:
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, (str, Path)):
        return Path(data).stat().st_size
    data.seek(0, os.SEEK_END)
    size = data.tell()
    data.seek(0)
    return size


def _head(data: bytes | Path | IO[bytes]) -> bytes:
    return _read(data, _HEAD_BYTES)


def _read(data: bytes | Path | IO[bytes], limit: int) -> bytes:
    """At most ``limit`` bytes from the start of an upload input."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data[:limit])
    if isinstance(data, (str, Path)):
        with Path(data).open("rb") as fh:
            return fh.read(limit)
    data.seek(0)
    out = data.read(limit)
    data.seek(0)
    return out
