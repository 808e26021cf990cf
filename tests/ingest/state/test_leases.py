"""Leases, tick claims and the writers' lock, across threads and real processes, on SQLite and on a
real PostgreSQL server: a holder that dies (SIGKILL) frees what it held."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ingest.state import Lease, LeaseBusyError, StateDatabase, claim_tick
from ingest.state.leases import current_holder

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def _holder_process(url: str, code: str) -> subprocess.Popen[str]:
    """A Python process that opens the database, runs ``code`` and says "held", then waits."""
    script = textwrap.dedent(f"""
        import sys, time
        from ingest.state import Lease, StateDatabase
        db = StateDatabase({url!r}).warm_up()
        {code}
        print("held", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lease_is_exclusive_renewed_while_held_and_free_after_release(url: str) -> None:
    db = StateDatabase(url).warm_up()
    first, second = Lease(db, "sync", ttl_s=0.6, holder="one"), Lease(db, "sync", ttl_s=0.6, holder="two")
    with first:
        time.sleep(1.5)  # past two time-to-lives: only the renewals keep it
        with pytest.raises(LeaseBusyError, match="'sync' is held by one"):
            second.acquire()
        assert current_holder(db, "sync") is not None and not first.lost
    assert current_holder(db, "sync") is None
    with second:
        assert current_holder(db, "sync")[0] == "two"  # type: ignore[index]
    db.close()


def test_a_lease_whose_holder_stops_renewing_expires(url: str) -> None:
    db = StateDatabase(url).warm_up()
    stalled = Lease(db, "sync", ttl_s=0.5, holder="elsewhere:1:1")
    stalled.acquire()
    stalled._stop.set()  # the holder froze (or its machine went away): no more renewals
    taker = Lease(db, "sync", ttl_s=5, holder="me")
    with pytest.raises(LeaseBusyError):
        taker.acquire()
    time.sleep(0.8)
    with taker:
        assert current_holder(db, "sync")[0] == "me"  # type: ignore[index]
    assert not stalled.renew()  # the old holder learns it lost the lease
    db.close()


def test_a_sigkilled_holder_on_this_machine_is_taken_over_at_once(url: str) -> None:
    proc = _holder_process(url, 'lease = Lease(db, "sync", ttl_s=600); lease.acquire()')
    db = StateDatabase(url).warm_up()
    try:
        with pytest.raises(LeaseBusyError, match=f":{proc.pid}:"):
            Lease(db, "sync").acquire()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        with Lease(db, "sync", holder="next") as lease:  # the dead pid's lease, without the 600 s wait
            assert not lease.lost
    finally:
        proc.kill()
        db.close()


def test_each_tick_is_claimed_once_across_threads(url: str) -> None:
    db = StateDatabase(url).warm_up()
    wins: list[tuple[float, str]] = []

    def replica(name: str) -> None:
        for tick in (100.0, 200.0, 300.0):
            if claim_tick(db, "folder-sync", tick, holder=name):
                wins.append((tick, name))

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(t for t, _ in wins) == [100.0, 200.0, 300.0]
    assert not claim_tick(db, "folder-sync", 250.0)  # an older tick than the last one claimed
    db.close()


def test_the_writers_lock_excludes_other_processes_until_their_holder_dies(url: str) -> None:
    db = StateDatabase(url).warm_up()
    proc = _holder_process(url, "lock = db.write_lock(); lock.__enter__()")
    got = threading.Event()

    def take() -> None:
        with db.write_lock(), db.write_lock():  # re-entrant within a process
            got.set()

    taker = threading.Thread(target=take)
    try:
        taker.start()
        assert not got.wait(1.0)  # the other process holds it
        os.kill(proc.pid, signal.SIGKILL)  # the kernel / the server drops a dead holder's lock
        assert got.wait(30)
    finally:
        proc.kill()
        taker.join(30)
        db.close()
