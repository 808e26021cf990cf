"""Named values in the state database (``kb_values``): written by one replica, read by all."""
from __future__ import annotations

import time

from sqlalchemy import select

from ingest.state.database import StateDatabase, upsert
from ingest.state.schema import kb_values


def get_value(db: StateDatabase, key: str) -> tuple[str, float] | None:
    """(value, updated_at) of ``key``, or None."""
    with db.read() as conn:
        row = conn.execute(select(kb_values.c.value, kb_values.c.updated_at).where(kb_values.c.key == key)).first()
    return (row.value, row.updated_at) if row else None


def updated_at(db: StateDatabase, key: str) -> float | None:
    """When ``key`` was last written (cheap: for followers polling for a change)."""
    with db.read() as conn:
        return conn.execute(select(kb_values.c.updated_at).where(kb_values.c.key == key)).scalar_one_or_none()


def put_value(db: StateDatabase, key: str, value: str) -> float:
    """Store ``value`` under ``key``; returns its ``updated_at``."""
    now = time.time()
    with db.write() as conn:
        conn.execute(upsert(conn, kb_values, {"key": key, "value": value, "updated_at": now},
                            key="key", update={"value": value, "updated_at": now}))
    return now
