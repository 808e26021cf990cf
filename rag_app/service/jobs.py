"""One job model for everything that runs in the background: ingestion, sync, tuning, calibration.

A :class:`Job` is what a front end polls: its state, its stage and progress, per-file results
(ingestion), report lines (tuning) and the error, if any. :class:`JobWorker` runs write jobs one at
a time in arrival order (the indexer is not designed for concurrent writers, and chat requests,
which only read, are never blocked behind an ingestion); :func:`start_in_thread` runs a long job
(tuning, calibration) in its own thread.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

JobKind = Literal["upload", "reindex", "delete", "sync", "tuning", "calibration"]
JobState = Literal["queued", "running", "done", "failed"]
FileStatus = Literal[
    "queued", "indexing", "indexed", "unchanged", "duplicate", "failed", "skipped", "removed", "renamed"
]
_next_id = itertools.count(1)


@dataclass(frozen=True)
class FileResult:
    """What became of one file of a job."""

    name: str  # what the user knows the file as
    status: str  # a FileStatus
    detail: str = ""
    source: str = ""  # the indexed source (stored path), when there is one

    def to_dict(self) -> dict[str, str]:
        return {"file": self.name, "status": self.status, "detail": self.detail, "source": self.source}


@dataclass
class Job:
    """A background job and everything a front end shows about it. Thread-safe to read."""

    kind: JobKind
    state: JobState = "queued"
    stage: str = ""  # the step it is in ("sample", "train", ...), for multi-stage jobs
    done: int = 0  # progress within the stage
    total: int = 0
    detail: str = ""
    error: str = ""
    value: Any = None  # a job-specific result (chunks removed by a delete, a tuning report)
    report: list[str] = field(default_factory=list)  # lines to show when it has finished
    results: list[FileResult] = field(default_factory=list)
    id: int = field(default_factory=lambda: next(_next_id))
    created: float = field(default_factory=time.time)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- per-file results ---------------------------------------------------------------------------
    def snapshot(self) -> list[FileResult]:
        with self._lock:
            return list(self.results)

    def set_result(self, index: int, **changes: str) -> None:
        with self._lock:
            self.results[index] = replace(self.results[index], **changes)

    def add_result(self, result: FileResult) -> None:
        with self._lock:
            self.results.append(result)

    @property
    def files_progress(self) -> tuple[int, int]:
        """(files finished, files in the job)."""
        with self._lock:
            finished = sum(r.status not in ("queued", "indexing") for r in self.results)
            return finished, len(self.results)

    # --- stage progress -----------------------------------------------------------------------------
    def progress(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """A progress callback for multi-stage jobs (tuning, calibration)."""
        self.stage, self.done, self.total, self.detail = stage, done, total, detail

    # --- lifecycle ----------------------------------------------------------------------------------
    def run(self, body: Callable[[Job], None]) -> None:
        """Run ``body`` as this job: state, error and the finished event are set whatever happens."""
        self.state = "running"
        try:
            body(self)
            self.state = "done"
        except Exception as exc:  # the job reports; its runner must survive for the next one
            log.exception("%s job %d failed", self.kind, self.id)
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            for i, r in enumerate(self.snapshot()):
                if r.status in ("queued", "indexing"):
                    self.set_result(i, status="failed", detail=self.error)
        finally:
            self.finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")


JobBody = Callable[[Job], None]


class JobRecorder(Protocol):
    """Where jobs are also written for other processes to see (``job_journal.JobJournal``)."""

    def track(self, job: Job) -> None: ...

    def finish(self, job: Job) -> None: ...


class JobWorker:
    """One daemon thread running jobs in arrival order; started on the first job. ``recorder``:
    each job is also recorded there, from queued to its end."""

    def __init__(self, name: str = "ingest-worker", recorder: JobRecorder | None = None) -> None:
        self._name = name
        self.recorder = recorder
        self._queue: queue.Queue[tuple[Job, JobBody] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Job, body: JobBody) -> Job:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        if self.recorder is not None:
            self.recorder.track(job)
        self._queue.put((job, body))
        return job

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, body = item
            _run_recorded(job, body, self.recorder)

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)


def start_in_thread(job: Job, body: JobBody, name: str, recorder: JobRecorder | None = None) -> Job:
    """Run a long job (tuning, calibration) in its own daemon thread."""
    if recorder is not None:
        recorder.track(job)
    threading.Thread(target=_run_recorded, args=(job, body, recorder), name=name, daemon=True).start()
    return job


def _run_recorded(job: Job, body: JobBody, recorder: JobRecorder | None) -> None:
    try:
        job.run(body)
    finally:
        if recorder is not None:
            recorder.finish(job)
