"""Named values in the state database (``kb_values``): written by one replica, read by all."""
from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ingest.state.database import StateDatabase
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
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            insert(kb_values).values(key=key, value=value, updated_at=now).on_conflict_do_update(
                index_elements=[kb_values.c.key], set_={"value": value, "updated_at": now}
            )
        )
    return now
