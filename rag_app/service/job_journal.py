"""Background jobs written to the state database, so every replica sees every replica's jobs.

A :class:`Job` lives in the memory of the process that runs it (its front end polls it there); the
journal copies it into the ``jobs`` table when it is queued, every ``HEARTBEAT_S`` while it is
queued or running (state, stage, progress, per-file results) and when it ends. Each write pushes
the job's lease (``lease_until``) forward by ``LEASE_S``: a job still queued or running whose lease
has passed belonged to a replica that died (SIGKILL, a lost machine) and reads as ``interrupted``.
The journal never fails a job: a database that is away is logged and retried on the next beat.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import insert, select, update

from ingest.state import StateDatabase
from ingest.state.database import new_holder
from ingest.state.schema import DEFAULT_KB
from ingest.state.schema import jobs as jobs_table

from .jobs import Job

log = logging.getLogger(__name__)

LEASE_S = 30.0
HEARTBEAT_S = LEASE_S / 3


class JobJournal:
    """The jobs of one knowledge base (``kb``) in the shared ``jobs`` table."""

    def __init__(self, db: StateDatabase, holder: str | None = None, kb: str = DEFAULT_KB) -> None:
        self.db = db
        self.kb = kb
        self.holder = holder or new_holder()
        self._ids: dict[int, str] = {}  # in-memory job id -> row id
        self._live: dict[str, Job] = {}  # rows whose job is queued or running
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # --- writes -------------------------------------------------------------------------------------
    def track(self, job: Job) -> None:
        """Record a new job and keep its row current until it ends."""
        row_id = f"{self.holder}:{job.id}"
        with self._lock:
            self._ids[job.id] = row_id
            self._live[row_id] = job
            if self._beat is None:
                self._beat = threading.Thread(target=self._beat_loop, name="job-journal", daemon=True)
                self._beat.start()
        now = time.time()
        self._safely(lambda conn: conn.execute(insert(jobs_table).values(
            id=row_id, kind=job.kind, kb=self.kb, holder=self.holder, created_at=job.created, **_fields(job, now))))

    def finish(self, job: Job) -> None:
        """Write the job's end state (done or failed) now."""
        with self._lock:
            row_id = self._ids.pop(job.id, None)
            if row_id is not None:
                self._live.pop(row_id, None)
        if row_id is not None:
            self._write(row_id, job)

    def _write(self, row_id: str, job: Job) -> None:
        now = time.time()
        self._safely(lambda conn: conn.execute(
            update(jobs_table).where(jobs_table.c.id == row_id).values(**_fields(job, now))))

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                live = list(self._live.items())
            for row_id, job in live:
                self._write(row_id, job)

    def _safely(self, statement: Any) -> None:
        try:
            with self.db.write() as conn:
                statement(conn)
        except Exception as exc:  # a job must never fail because its record could not be written
            log.warning("job journal: %s", exc)

    def close(self) -> None:
        self._stop.set()
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.join(5)

    # --- reads --------------------------------------------------------------------------------------
    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest jobs of this knowledge base on every replica, newest first; ``state`` is ``interrupted`` for a job
        whose replica stopped renewing it."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(jobs_table).where(jobs_table.c.kb == self.kb)
                .order_by(jobs_table.c.created_at.desc()).limit(limit)
            ).mappings().all()
        now = time.time()
        out = []
        for row in rows:
            item = dict(row)
            item["files"] = json.loads(item["files"] or "[]")
            if item["state"] in ("queued", "running") and item["lease_until"] < now:
                item["state"] = "interrupted"
                item["error"] = item["error"] or f"its replica ({item['holder']}) stopped before it finished"
            item["this_replica"] = item["holder"] == self.holder
            out.append(item)
        return out


def _fields(job: Job, now: float) -> dict[str, Any]:
    """The columns a job's progress updates."""
    return {
        "state": job.state, "stage": job.stage, "done": job.done, "total": job.total,
        "detail": job.detail, "error": job.error,
        "files": json.dumps([r.to_dict() for r in job.snapshot()], ensure_ascii=False),
        "updated_at": now, "lease_until": now + LEASE_S,
    }
