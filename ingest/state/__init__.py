"""The application's state in a real database, behind SQLAlchemy: the document registry, leases
(sync, scheduler ticks) and the writers' lock. SQLite by default (a file in the data directory),
PostgreSQL in the server shape (``database.url``), schema kept by Alembic migrations."""
from ingest.state.database import StateDatabase, StateDatabaseError
from ingest.state.leases import Lease, LeaseBusyError, claim_tick

__all__ = ["Lease", "LeaseBusyError", "StateDatabase", "StateDatabaseError", "claim_tick"]
