"""Leases and tick claims in the state database: how replicas share work without shared files.

A :class:`Lease` is a named exclusive right with an expiry (``leases`` table). Its holder renews it
from a background thread every third of its time-to-live; a holder that dies (SIGKILL, a lost
machine) stops renewing and the lease is free again within one time-to-live. Taking a lease is one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` statement, atomic on SQLite and PostgreSQL.

:func:`claim_tick` lets exactly one replica run each scheduled tick: the claim moves the stored
last tick forward only if it is older than this one. Times are the replicas' own clocks (unix
seconds): keep them in step (NTP), well within a lease's time-to-live.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType

from sqlalchemy import delete, select, update

from ingest.state.database import StateDatabase, default_holder, new_holder, upsert
from ingest.state.schema import leases, ticks

log = logging.getLogger(__name__)


class LeaseBusyError(RuntimeError):
    """Another holder has the lease; ``holder`` and ``expires_at`` say who and until when."""

    def __init__(self, name: str, holder: str, expires_at: float) -> None:
        self.name, self.holder, self.expires_at = name, holder, expires_at
        left = max(0.0, expires_at - time.time())
        super().__init__(f"'{name}' is held by {holder} (expires in {left:.0f} s unless renewed)")


class Lease:
    """``with Lease(db, "sync"):`` holds the lease for the block, or raises :class:`LeaseBusyError`."""

    def __init__(self, db: StateDatabase, name: str, ttl_s: float = 30.0, holder: str | None = None) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.db = db
        self.name = name
        self.ttl_s = ttl_s
        self.holder = holder or new_holder()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when a renewal found the lease taken (this holder stalled past its TTL)

    def acquire(self) -> None:
        if self._renewer is not None:
            raise RuntimeError("Lease is not re-entrant")
        now = time.time()
        with self.db.write() as conn:
            stmt = upsert(
                conn, leases,
                {"name": self.name, "holder": self.holder, "acquired_at": now, "expires_at": now + self.ttl_s},
                key="name",
                update={"holder": self.holder, "acquired_at": now, "expires_at": now + self.ttl_s},
                where=(leases.c.expires_at < now) | (leases.c.holder == self.holder),
            ).returning(leases.c.name)
            # RETURNING, not rowcount: psycopg reports no row count for an INSERT ... ON CONFLICT.
            taken = conn.execute(stmt).first() is not None
            if not taken:
                row = conn.execute(select(leases).where(leases.c.name == self.name)).one()
        if not taken and _holder_died_here(row.holder):
            taken = self._take_over(row.holder, now)
        if not taken:
            raise LeaseBusyError(self.name, row.holder, row.expires_at)
        self.lost = False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()

    def _take_over(self, dead: str, now: float) -> bool:
        log.warning("lease '%s': its holder %s has exited without releasing it; taking it over", self.name, dead)
        with self.db.write() as conn:
            return conn.execute(
                update(leases)
                .where((leases.c.name == self.name) & (leases.c.holder == dead))
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.ttl_s)
            ).rowcount == 1

    def release(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is None:
            return
        self._stop.set()
        renewer.join()
        with self.db.write() as conn:
            conn.execute(delete(leases).where((leases.c.name == self.name) & (leases.c.holder == self.holder)))

    @property
    def held(self) -> bool:
        return self._renewer is not None

    def renew(self) -> bool:
        """Push the expiry forward; False if the lease is no longer this holder's."""
        with self.db.write() as conn:
            moved = conn.execute(
                update(leases)
                .where((leases.c.name == self.name) & (leases.c.holder == self.holder))
                .values(expires_at=time.time() + self.ttl_s)
            ).rowcount
        return moved == 1

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.renew():
                    self.lost = True
                    log.error("lease '%s' was taken over by another holder while %s held it", self.name, self.holder)
                    return
            except Exception as exc:  # the database is away: keep trying until the lease would expire
                log.warning("renewing lease '%s': %s", self.name, exc)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _holder_died_here(holder: str) -> bool:
    """Whether ``holder`` ("host:pid:id") was a process on this machine that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != default_holder().split(":", 1)[0] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def current_holder(db: StateDatabase, name: str) -> tuple[str, float] | None:
    """(holder, expires_at) of a lease that has not expired, else None."""
    with db.read() as conn:
        row = conn.execute(select(leases).where(leases.c.name == name)).one_or_none()
    if row is None or row.expires_at < time.time():
        return None
    return row.holder, row.expires_at


def claim_tick(db: StateDatabase, name: str, tick: float, holder: str | None = None) -> bool:
    """Claim scheduled tick ``tick`` (unix seconds) of schedule ``name``: True for exactly one caller
    per tick, whichever replica asks first; False for the others and for a tick already passed."""
    holder = holder or default_holder()
    with db.write() as conn:
        stmt = upsert(
            conn, ticks, {"name": name, "last_tick": tick, "holder": holder},
            key="name", update={"last_tick": tick, "holder": holder}, where=ticks.c.last_tick < tick,
        ).returning(ticks.c.name)
        return conn.execute(stmt).first() is not None
