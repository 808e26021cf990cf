"""The lock that lets only one folder sync run per knowledge base, across threads, processes and replicas.

A lease named ``sync`` (``sync:<kb>`` for a knowledge base other than the default) in the state
database (``ingest.state.leases``): the holder renews it while the sync runs; a holder that dies
(SIGKILL, a lost replica) stops renewing and the lease expires within ``ttl_s``. A holder on this
machine whose process is gone is taken over at once.
"""
from __future__ import annotations

import logging

from ingest.state.database import StateDatabase
from ingest.state.leases import Lease, LeaseBusyError

log = logging.getLogger(__name__)

SYNC_LEASE = "sync"
SYNC_LEASE_TTL_S = 30.0


class SyncInProgressError(RuntimeError):
    """Another sync of this knowledge base is running (in this or another process or replica)."""


class SyncLock(Lease):
    """Non-blocking exclusive lock; use as a context manager around one sync."""

    def __init__(self, db: StateDatabase, ttl_s: float = SYNC_LEASE_TTL_S, *, name: str = SYNC_LEASE) -> None:
        """``name``: the lease of one knowledge base (``Registry.scoped_name(SYNC_LEASE)``)."""
        super().__init__(db, name, ttl_s=ttl_s)

    def acquire(self) -> None:
        try:
            super().acquire()
        except LeaseBusyError as busy:
            raise SyncInProgressError(
                f"another sync is already running on this knowledge base (held by {busy.holder}); try"
                " again when it has finished"
            ) from None
