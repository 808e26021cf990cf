"""Team knowledge bases: the catalog of knowledge bases, users with roles in each, kept
conversations, feedback on answers and the audit log, all in the state database (its own
migrations, ``migrations/``). Front ends reach these through ``rag_app.service.workspace``."""
from pathlib import Path

from ingest.state import StateDatabase

from .schema import VERSION_TABLE

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate_team_tables(db: StateDatabase) -> None:
    """Create or upgrade the team tables in ``db`` (idempotent; under the migration lock)."""
    db.migrate(MIGRATIONS, VERSION_TABLE)
