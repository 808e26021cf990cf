"""The shared file primitives: atomic replacement, the flock, the streamed hash."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from ingest.files import (
    LockBusyError,
    atomic_write,
    atomic_write_text,
    file_lock,
    is_temp_name,
    sha256_file,
    temp_files,
)


def test_atomic_write_replaces_and_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    atomic_write_text(path, "old")
    assert path.read_text() == "old"

    def half_then_fail(out) -> None:
        out.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert os.listdir(path.parent) == ["state.json"] and temp_files(path) == []


def test_atomic_write_gives_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644


def test_temp_names_are_recognised(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    seen: list[str] = []
    atomic_write(path, lambda out: seen.extend(os.listdir(tmp_path)))
    assert len(seen) == 1 and is_temp_name(seen[0]) and seen[0].startswith(".big.bin.")
    assert not is_temp_name("big.bin") and not is_temp_name(".hidden")


def test_file_lock_excludes_a_second_holder_and_frees_on_exit(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    # another open file: another holder, even in-process
    with file_lock(lock), pytest.raises(LockBusyError), file_lock(lock, blocking=False):
        pass
    with file_lock(lock, blocking=False) as fd:
        assert isinstance(fd, int)


def test_sha256_file_streams_the_same_digest(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # crosses block boundaries
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
