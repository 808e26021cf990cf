"""The inter-process lock that lets only one folder sync run per data directory.

``fcntl.flock`` on ``<data_dir>/sync.lock``: the kernel drops the lock when its holder exits, even
on SIGKILL, so a crashed sync never leaves a stale lock behind (no pid files to clean up). flock
locks belong to an open file description, so two threads of one process that each open the file
also exclude each other. Built on ``ingest.files.file_lock`` (non-blocking), plus the holder's pid.
"""
from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from ingest.files import LockBusyError, file_lock

log = logging.getLogger(__name__)


class SyncInProgressError(RuntimeError):
    """Another sync of this data directory is running (in this or another process)."""


class SyncLock:
    """Non-blocking exclusive lock; use as a context manager around one sync."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held: ExitStack | None = None

    def acquire(self) -> None:
        if self._held is not None:
            raise RuntimeError("SyncLock is not re-entrant")
        held = ExitStack()
        try:
            fd = held.enter_context(file_lock(self.path, blocking=False))
        except LockBusyError:
            holder = _read_holder(self.path)
            raise SyncInProgressError(
                f"another sync is already running on this data directory (lock {self.path}"
                f"{', held by ' + holder if holder else ''}); try again when it has finished"
            ) from None
        try:
            # Who holds it, for the message above; informative only (the flock is the lock).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        except BaseException:
            held.close()
            raise
        self._held = held

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    @property
    def held(self) -> bool:
        return self._held is not None

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return f.read(64).decode("ascii", "replace").strip()
    except OSError:
        return ""
