"""The inter-process lock that lets only one folder sync run per data directory.

``fcntl.flock`` on ``<data_dir>/sync.lock``: the kernel drops the lock when its holder exits, even
on SIGKILL, so a crashed sync never leaves a stale lock behind (no pid files to clean up). flock
locks belong to an open file description, so two threads of one process that each open the file
also exclude each other.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class SyncInProgressError(RuntimeError):
    """Another sync of this data directory is running (in this or another process)."""


class SyncLock:
    """Non-blocking exclusive lock; use as a context manager around one sync."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError("SyncLock is not re-entrant")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SyncInProgressError(
                    f"another sync is already running on this data directory (lock {self.path}"
                    f"{', held by ' + holder if holder else ''}); try again when it has finished"
                ) from None
            raise
        # Who holds it, for the message above; informative only (the flock is the lock).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> SyncLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
