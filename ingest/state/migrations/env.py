"""Alembic environment: run by ``StateDatabase.warm_up`` with an open connection (no alembic.ini,
no URL here: the application's ``database.url`` decides)."""
from __future__ import annotations

from alembic import context

from ingest.state.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
