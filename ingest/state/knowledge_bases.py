"""Removing one knowledge base's rows from every state table (the knowledge base is being deleted).

Its rows are the registry's with its ``kb``, its jobs, and the leases, scheduler ticks and named
values whose names it scoped (``Registry.scoped_name``: ``<name>:<kb>``).
"""
from __future__ import annotations

from sqlalchemy import delete

from ingest.state.database import StateDatabase
from ingest.state.schema import DEFAULT_KB, chunks, documents, jobs, kb_values, leases, stale_meta, ticks


def forget_knowledge_base(db: StateDatabase, kb: str) -> dict[str, int]:
    """Delete every state row of knowledge base ``kb`` in one transaction; returns rows per table."""
    if kb == DEFAULT_KB:
        raise ValueError("the default knowledge base's state is not scoped by name: it cannot be forgotten")
    removed: dict[str, int] = {}
    with db.write() as conn:
        for table in (chunks, stale_meta, documents, jobs):
            removed[table.name] = int(conn.execute(delete(table).where(table.c.kb == kb)).rowcount)
        for table, column in ((kb_values, kb_values.c.key), (leases, leases.c.name), (ticks, ticks.c.name)):
            scoped = column.endswith(f":{kb}", autoescape=True)
            removed[table.name] = int(conn.execute(delete(table).where(scoped)).rowcount)
    return removed
