"""The bodies of the write jobs the UI and the API queue: upload, re-index, delete.

They run on the service's :class:`~rag_app.service.jobs.JobWorker`, one at a time. What a size, a
name and the first KiB can refuse is refused before a job is queued (:func:`precheck`); the
loaders judge the rest in the worker.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.indexer import Indexer, IngestEvent
from ingest.loaders import LoadError, precheck_upload
from ingest.registry import Registry
from ingest.types import sha256_hex
from rag_app.config import Settings

from .jobs import FileResult, Job
from .uploads import (
    HEAD_BYTES,
    UploadData,
    UploadInput,
    UploadStore,
    display_name,
    read_upload,
    sanitize_filename,
    upload_size,
)

log = logging.getLogger(__name__)

_MB = 1024 * 1024
# (index of the file's result row, client name, its data)
AcceptedUpload = tuple[int, str, UploadData]


def precheck(job: Job, files: Sequence[UploadInput], settings: Settings) -> list[AcceptedUpload]:
    """Refuse what can be refused before a file is read, each with its reason in the job's results:
    more files than allowed, a file over the per-file limit, files beyond the per-request total,
    empty files, archives, unsupported types, executables or images under a document's name, plain
    text over the text limit. Returns the files accepted for the worker."""
    ui = settings.ui
    max_bytes, request_bytes = ui.max_upload_mb * _MB, ui.max_request_mb * _MB
    accepted_bytes = 0
    accepted: list[AcceptedUpload] = []
    for i, (name, data) in enumerate(files):
        shown = sanitize_filename(name)
        try:
            if i >= ui.max_files_per_request:
                raise LoadError(f"more than {ui.max_files_per_request} files in one upload")
            size = upload_size(data)
            if size > max_bytes:
                raise LoadError(f"{size / _MB:,.1f} MB is over the {ui.max_upload_mb} MB limit per file")
            precheck_upload(shown, size, read_upload(data, HEAD_BYTES), settings.loaders)
            if accepted_bytes + size > request_bytes:
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
        accepted_bytes += size
        job.add_result(FileResult(shown, "queued"))
        accepted.append((len(job.results) - 1, name, data))
    return accepted


class IngestionJobs:
    """Job bodies over one knowledge base's indexer, registry and upload store.

    ``on_change(chunks)`` runs after a job added or removed chunks (retrieval resamples its dense
    calibration, and the knowledge base is re-calibrated if that changed it materially)."""

    def __init__(
        self,
        indexer: Indexer,
        registry: Registry,
        uploads: UploadStore,
        max_upload_mb: int,
        on_change: Callable[[int], None],
    ) -> None:
        self.indexer = indexer
        self.registry = registry
        self.uploads = uploads
        self.max_upload_mb = max_upload_mb
        self.on_change = on_change

    def uploads_body(self, accepted: list[AcceptedUpload]) -> Callable[[Job], None]:
        return lambda job: self._run_uploads(job, accepted)

    def delete_body(self, source: str) -> Callable[[Job], None]:
        return lambda job: self._run_delete(job, source)

    def _run_uploads(self, job: Job, accepted: list[AcceptedUpload]) -> None:
        max_bytes = self.max_upload_mb * _MB
        changed = 0  # chunks added or removed
        for index, name, data in accepted:
            job.set_result(index, status="indexing")
            try:
                # One file in memory at a time, and never more than the limit of it.
                payload = read_upload(data, max_bytes + 1)
                if len(payload) > max_bytes:  # a temp file may have grown since it was checked
                    raise ValueError(f"over the {self.max_upload_mb} MB limit per file")
                digest = sha256_hex(payload)  # once: it names the stored file and identifies the document
                path = self.uploads.save(name, payload, digest)
            except (OSError, ValueError) as exc:
                job.set_result(index, status="failed", detail=str(exc))
                continue
            events: list[IngestEvent] = []
            report = self.indexer.ingest_bytes(str(path), payload, events.append, sha256=digest)
            del payload
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
            changed += report.chunks_added + report.chunks_removed
            log.info("upload %s -> %s (%s)", name, status, detail)
        if changed:
            self.on_change(changed)

    def run_reindex(self, job: Job) -> None:
        """Re-ingest every indexed file source that still exists on disk."""
        present: list[str] = []
        for doc in self.registry.documents():
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
            report = self.indexer.ingest_paths(present, on_event)
            if report.chunks_added or report.chunks_removed:
                self.on_change(report.chunks_added + report.chunks_removed)

    def _run_delete(self, job: Job, source: str) -> None:
        if self.registry.get(source) is None:
            job.value = None
            return
        removed = self.indexer.delete_sources([source])
        self.uploads.remove(source)  # only ever deletes inside <data_dir>/uploads
        job.value = removed
        job.add_result(FileResult(display_name(source), "removed", f"{removed} chunks", source))
        self.on_change(removed)
        log.info("deleted %s (%d chunks)", source, removed)
