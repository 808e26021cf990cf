"""File primitives every stage shares: atomic replacement, an inter-process lock, a streamed hash.

One implementation each, so a crash-safety or locking fix lands everywhere at once.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

_HASH_BLOCK = 1 << 20
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # what _create_temp makes


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object], *, fsync: bool = True) -> None:
    """Write ``path`` through ``write(file)`` into a temp file beside it, then rename it over ``path``.

    Readers see the old content or the new, never a half-written file; a failure (``write``
    raising included) leaves the old file and no temp file behind. ``fsync`` makes the new content
    durable before the rename; making the rename itself durable is :func:`fsync_dir`'s job (callers
    that need it batch it over several files). The file gets the permissions a plain ``open``
    would give (0666 less the umask), not mkstemp's 0600: caches are shared between users.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    # mkstemp's loop, but with mode 0666 so the kernel applies the umask as for any new file.
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name next to {path}")


def temp_files(path: str | Path) -> list[Path]:
    """Temp files that :func:`atomic_write` calls on ``path`` left behind (a crash mid-write).

    Only safe to delete while holding whatever serialises the writers of ``path``: a live
    writer's temp file matches too.
    """
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*{_TEMP_SUFFIX}"))


def is_temp_name(name: str) -> bool:
    """Whether a directory entry's name is an :func:`atomic_write` temp file (of any target)."""
    return _TEMP_NAME.match(name) is not None


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    atomic_write(path, lambda out: out.write(data), fsync=fsync)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def fsync_dir(path: str | Path) -> None:
    """Make the renames and creations inside directory ``path`` durable (best effort).

    After a power loss a renamed file may otherwise come back under its old name (or not at all).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LockBusyError(BlockingIOError):
    """A non-blocking :func:`file_lock` found the lock held by another open file."""


@contextlib.contextmanager
def file_lock(path: str | Path, *, blocking: bool = True) -> Iterator[int]:
    """An exclusive advisory lock (``flock``) on ``path``, held for the ``with`` block.

    flock belongs to the open file description, so it serialises threads and processes alike, and
    the kernel drops it when its holder dies (even on SIGKILL): no stale lock files to clean up.
    With ``blocking=False`` it raises :class:`LockBusyError` at once instead of waiting. Yields the
    lock file's descriptor (open read-write), e.g. to note who holds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not blocking and exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockBusyError(exc.errno, f"{path} is locked by another holder") from None
            raise
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks (files can be large)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def build_dir_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Make ``target`` a folder filled by ``build`` all at once: built in a temporary sibling, then
    swapped in with ``os.replace`` (a stale ``target`` moved aside first); a failed build leaves no
    trace. The caller holds a lock next to ``target``, so leftovers of a crashed build
    (``.<name>.tmp-*``) are safe to remove first."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; model caches may be shared
        build(tmp)
        if target.exists():  # stale or incomplete: move aside, since replace needs it gone
            old = target.parent / f".{target.name}.tmp-old-{os.getpid()}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
