"""Alembic environment of the team tables: run by ``StateDatabase.migrate`` with an open connection,
versioned in their own table so they never mix with the ingest library's revisions."""
from __future__ import annotations

from alembic import context

from rag_app.team.schema import metadata

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=metadata,
    version_table=config.attributes["version_table"],
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
