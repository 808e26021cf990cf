"""Periodic folder sync in the app process (APScheduler 3 ``BackgroundScheduler``); with several
replicas, each scheduled tick runs on the one that claims it in the state database.

One worker thread runs every sync, periodic or manual ("sync now"), so two never overlap in this
process; the sync lease taken by ``Indexer.sync_folder`` keeps other processes (a ``rag-ingest --sync``,
another replica) out too. A failed sync (Milvus down, folder missing, lock held) is logged and recorded in
``status()``; the schedule keeps going.

Typical wiring (the server owns it)::

    scheduler = SyncScheduler(kb, settings.scheduler)
    scheduler.start()          # adds the periodic job only when settings.enabled
    ...
    scheduler.status()         # for the Status tab / API
    scheduler.shutdown()       # before kb.close(): waits for a running sync to finish
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ingest.state import claim_tick
from ingest.sync import SyncInProgressError
from ingest.types import IngestReport
from rag_app.config import SchedulerSettings

from .knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

PERIODIC_JOB_ID = "folder-sync"


@dataclass(frozen=True)
class SyncStatus:
    """A snapshot of the folder sync, for display. Times are timezone-aware (server local time)."""

    folder: str  # absolute path of the folder mirrored into the index ("" = none configured)
    scheduled: bool  # a periodic schedule is active (scheduler.enabled and started)
    schedule: str  # when it runs, in words: "every 30 min", "cron '0 2 * * *' ...", "manual only"
    scheduler_running: bool  # the background scheduler is started (manual runs possible)
    running: bool  # a sync is in progress right now
    next_run: datetime | None  # next periodic run; None when nothing is scheduled
    last_started: datetime | None  # start of the most recent run (None: never ran)
    last_finished: datetime | None  # end of the most recent finished run
    last_duration_s: float | None  # how long the most recent finished run took
    last_ok: bool | None  # whether the most recent finished run succeeded (None: never ran)
    last_summary: str  # one line about the most recent finished run (counts, or the error)
    last_error: str  # error of the most recent run; "" when it succeeded
    last_success: datetime | None  # end of the most recent successful run
    last_counts: dict[str, int] = field(default_factory=dict)  # counts of the last successful run
    runs: int = 0  # finished runs since start-up
    failures: int = 0  # failed runs since start-up

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: datetimes as ISO 8601 strings."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat(timespec="seconds")
        return out


def report_counts(report: IngestReport) -> dict[str, int]:
    return {
        "indexed": len(report.indexed),
        "unchanged": len(report.unchanged),
        "renamed": len(report.renamed),
        "removed": len(report.removed),
        "duplicates": len(report.duplicates),
        "failed": len(report.failed),
        "skipped": len(report.skipped),
        "chunks_added": report.chunks_added,
        "chunks_removed": report.chunks_removed,
    }


def summarize(report: IngestReport) -> str:
    c = report_counts(report)
    return (
        f"{c['indexed']} indexed, {c['unchanged']} unchanged, {c['renamed']} renamed,"
        f" {c['removed']} removed, {c['failed']} failed, {c['skipped']} skipped;"
        f" chunks +{c['chunks_added']} / -{c['chunks_removed']}"
    )


class SyncScheduler:
    def __init__(
        self, kb: KnowledgeBase, settings: SchedulerSettings, on_change: Callable[[int], None] | None = None
    ) -> None:
        """``on_change(chunks)`` runs after a sync that added or removed chunks."""
        self.kb = kb
        self.settings = settings
        self.on_change = on_change
        self.folder = str(Path(settings.folder).expanduser().resolve()) if settings.folder.strip() else ""
        self._scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()  # guards the state below and start/shutdown
        self._pending: threading.Event | None = None  # a queued manual run not started yet
        self._running = False
        self._last_started: datetime | None = None
        self._last_finished: datetime | None = None
        self._last_duration: float | None = None
        self._last_ok: bool | None = None
        self._last_summary = ""
        self._last_error = ""
        self._last_success: datetime | None = None
        self._last_counts: dict[str, int] = {}
        self._runs = 0
        self._failures = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker; add the periodic job when ``settings.enabled``. Idempotent."""
        with self._lock:
            if self._scheduler is not None:
                return
            # One worker: periodic and manual runs queue instead of overlapping.
            scheduler = BackgroundScheduler(
                executors={"default": ThreadPoolExecutor(max_workers=1)},
                job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
                daemon=True,
            )
            scheduler.start()
            self._scheduler = scheduler
            trigger = self._trigger()
        if trigger is not None:
            scheduler.add_job(
                self._run_job,
                trigger,
                kwargs={"periodic": True},
                id=PERIODIC_JOB_ID,
                name=f"sync {self.folder}",
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
            log.info("folder sync of %s scheduled %s", self.folder, self.describe_schedule())
        if self.settings.run_on_start:
            self.run_now()

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling; with ``wait``, let a running sync finish first (it cannot be cut)."""
        with self._lock:
            scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=wait)

    def __enter__(self) -> SyncScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- actions ---------------------------------------------------------------------------------
    def run_now(self, wait: bool = False, timeout: float | None = None) -> SyncStatus:
        """Queue a sync on the scheduler's worker; with ``wait``, return once it has finished
        (or ``timeout`` seconds passed). Requests made while one is still queued share it."""
        with self._lock:
            scheduler = self._scheduler
            if scheduler is None:
                raise RuntimeError("the sync scheduler is not started")
            event = self._pending
            if event is None:
                event = self._pending = threading.Event()
                scheduler.add_job(self._run_job, kwargs={"done": event}, name=f"sync now {self.folder}")
        if wait:
            event.wait(timeout)
        return self.status()

    def status(self) -> SyncStatus:
        """Thread-safe snapshot for the UI."""
        with self._lock:
            scheduler = self._scheduler
        job = scheduler.get_job(PERIODIC_JOB_ID) if scheduler is not None else None
        next_run = job.next_run_time if job is not None else None
        with self._lock:
            return SyncStatus(
                folder=self.folder,
                scheduled=job is not None,
                schedule=self.describe_schedule(),
                scheduler_running=scheduler is not None,
                running=self._running,
                next_run=next_run,
                last_started=self._last_started,
                last_finished=self._last_finished,
                last_duration_s=self._last_duration,
                last_ok=self._last_ok,
                last_summary=self._last_summary,
                last_error=self._last_error,
                last_success=self._last_success,
                last_counts=dict(self._last_counts),
                runs=self._runs,
                failures=self._failures,
            )

    def describe_schedule(self) -> str:
        s = self.settings
        if not s.enabled:
            return "manual only (scheduler.enabled is false)"
        if s.interval_seconds is not None:
            return f"every {_duration(s.interval_seconds)}"
        return f"cron '{s.cron}' (minute hour day month weekday, server time)"

    # --- internals -------------------------------------------------------------------------------
    def _trigger(self) -> BaseTrigger | None:
        s = self.settings
        if not s.enabled:
            return None
        if s.interval_seconds is not None:
            return IntervalTrigger(seconds=s.interval_seconds)
        return CronTrigger.from_crontab(s.cron)

    def _tick_period_s(self) -> int:
        """The schedule's granularity: its interval, or a minute for cron."""
        return self.settings.interval_seconds or 60

    def _claim_tick(self) -> bool:
        """Whether this replica runs the current scheduled tick: every replica's schedule fires, the
        first to claim the tick in the state database runs it (one sync per tick across replicas)."""
        self.kb.warm_up()
        registry, _, _ = self.kb.stores()
        period = self._tick_period_s()
        tick = float(int(time.time() // period) * period)
        return claim_tick(registry.db, registry.scoped_name(f"folder-sync:{self.folder}"), tick)

    def _run_job(self, done: threading.Event | None = None, periodic: bool = False) -> None:
        """One sync; never raises (an exception would only be logged by APScheduler, unrecorded)."""
        try:
            if periodic and not self._claim_tick():
                log.info("scheduled sync of %s: this tick runs on another replica", self.folder)
                return
        except Exception:  # the state database is away: this replica runs it (the sync lease still guards)
            log.warning("could not claim the scheduled tick; syncing anyway", exc_info=True)
        with self._lock:
            if done is not None and self._pending is done:
                self._pending = None  # later requests need a run that starts after them
            self._running = True
            self._last_started = datetime.now().astimezone()
        t0 = time.monotonic()
        report: IngestReport | None = None
        error = ""
        try:
            if not self.folder:
                raise ValueError("no folder to sync: set scheduler.folder")
            self.kb.warm_up()
            assert self.kb.indexer is not None
            report = self.kb.indexer.sync_folder(self.folder)
            changed = report.chunks_added + report.chunks_removed
            if changed and self.on_change is not None:
                self.on_change(changed)
        except SyncInProgressError as exc:  # expected now and then: no traceback
            error = str(exc)
            log.warning("scheduled sync skipped: %s", exc)
        except Exception as exc:  # recorded and logged; the schedule must survive any failure
            error = f"{type(exc).__name__}: {exc}"
            log.exception("sync of %s failed", self.folder)
        finally:
            finished = datetime.now().astimezone()
            with self._lock:
                self._running = False
                self._last_finished = finished
                self._last_duration = round(time.monotonic() - t0, 3)
                self._runs += 1
                if report is not None:
                    self._last_ok = True
                    self._last_error = ""
                    self._last_summary = summarize(report)
                    self._last_counts = report_counts(report)
                    self._last_success = finished
                else:
                    self._last_ok = False
                    self._last_error = error or "sync did not finish"
                    self._last_summary = f"failed: {self._last_error}"
                    self._failures += 1
            if done is not None:
                done.set()


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
