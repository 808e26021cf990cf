"""One state database: an SQLAlchemy engine, its migrations, and the writers' lock.

``url`` is an SQLAlchemy URL: ``sqlite:///<path>`` (the embedded default, a file in the data
directory) or ``postgresql+psycopg://user:password@host:5432/name`` (the server shape, shared by
every replica). ``warm_up()`` connects and brings the schema to the newest Alembic revision, under
a lock, so replicas starting together migrate once.

The writers' lock (:meth:`StateDatabase.write_lock`) serialises every change to the stores (Milvus,
BM25 and the registry together) across processes and threads: a PostgreSQL session-level advisory
lock held on its own connection (the server drops it when the holder's connection dies, SIGKILL
included), or for SQLite an ``flock`` on a file beside the database (dropped by the kernel likewise).
It is held per batch of chunks, never while a file is parsed or embedded.
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from ingest.files import file_lock

log = logging.getLogger(__name__)

# Advisory lock keys (PostgreSQL): any 64-bit numbers, fixed so every replica uses the same ones.
_WRITE_LOCK_KEY = 0x7261_6700_0001
_MIGRATION_LOCK_KEY = 0x7261_6700_0002
BASELINE_REVISION = "0001"  # the schema the SQLite registry had before migrations existed
CONNECT_TIMEOUT_S = 5


class StateDatabaseError(RuntimeError):
    """The state database could not be opened or migrated; the message says which and where."""


class StateDatabase:
    """Light to construct; ``warm_up()`` connects and migrates. Thread-safe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._writer = _WriterLock(self)

    @classmethod
    def sqlite(cls, path: str | Path) -> StateDatabase:
        return cls(f"sqlite:///{Path(path).resolve()}")

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return make_url(self.url).get_backend_name()

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of an SQLite URL (None for a server)."""
        url = make_url(self.url)
        return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None

    def display_url(self) -> str:
        """The URL with its password masked, for logs and the status page."""
        return make_url(self.url).render_as_string(hide_password=True)

    # --- lifecycle ----------------------------------------------------------------------------
    def warm_up(self) -> StateDatabase:
        with self._lock:
            if self._engine is not None:
                return self
            engine = self._create_engine()
            try:
                _migrate(engine)
            except SQLAlchemyError as exc:
                engine.dispose()
                raise StateDatabaseError(
                    f"cannot open the state database {self.display_url()}: {exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            self._engine = engine
            return self

    def migrate(self, script_location: Path, version_table: str) -> None:
        """Bring another set of tables in this database to its newest revision: an application's own
        Alembic migrations at ``script_location``, versioned in their own ``version_table`` (its
        ``env.py`` reads ``config.attributes["version_table"]``), under the same migration lock."""
        try:
            _migrate(self.engine, script_location, version_table)
        except SQLAlchemyError as exc:
            raise StateDatabaseError(
                f"cannot migrate {version_table} in the state database {self.display_url()}: "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self.warm_up()
        assert self._engine is not None
        return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self.url)
        kind = url.get_backend_name()
        if kind == "sqlite":
            path = self.sqlite_path
            if path is None:
                raise StateDatabaseError("an in-memory SQLite database cannot hold state: give a file path")
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_transactions(engine)
            return engine
        if kind == "postgresql":
            if url.get_driver_name() in ("", "psycopg2"):
                url = url.set(drivername="postgresql+psycopg")
            return create_engine(
                url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
            )
        raise StateDatabaseError(f"database.url must be sqlite:/// or postgresql://, not {self.display_url()}")

    # --- transactions ---------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, so it never fails half-way to upgrade)."""
        with self.engine.execution_options(immediate=True).begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def write_lock(self) -> _WriterLock:
        """The writers' lock of this database: re-entrant, shared by every user in this process."""
        return self._writer


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions (pysqlite's own are deferred and skip DDL),
    with WAL, foreign keys and full fsync, as the registry always had."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writes take the write lock up front; reads are single statements, each consistent on its
        # own under WAL, so they run without a transaction (a BEGIN/ROLLBACK pair per read cost
        # more than the read: benchmarks/bench_registry.py).
        if conn.get_execution_options().get("immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _migrate(
    engine: Engine, script_location: Path = Path(__file__).parent / "migrations", version_table: str = "alembic_version"
) -> None:
    """Upgrade the schema to the newest revision. A registry made before migrations existed (its
    tables, no ``alembic_version``) is stamped as the baseline first, so nothing is re-created."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    with engine.execution_options(immediate=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find nothing to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        tables = set(inspect(conn).get_table_names())
        if version_table == "alembic_version" and "documents" in tables and "alembic_version" not in tables:
            log.info("state database: stamping the pre-migration registry as revision %s", BASELINE_REVISION)
            command.stamp(config, BASELINE_REVISION)
        command.upgrade(config, "head")


class _WriterLock:
    """Re-entrant across this process's threads (an RLock) and exclusive across processes."""

    def __init__(self, db: StateDatabase) -> None:
        self._db = db
        self._rlock = threading.RLock()
        self._depth = 0
        self._held: ExitStack | None = None

    def __enter__(self) -> _WriterLock:
        self._rlock.acquire()
        try:
            if self._depth == 0:
                self._held = self._acquire_across_processes()
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._held is not None:
                held, self._held = self._held, None
                held.close()
        finally:
            self._rlock.release()

    def _acquire_across_processes(self) -> ExitStack:
        held = ExitStack()
        path = self._db.sqlite_path
        if path is not None:
            held.enter_context(file_lock(path.with_name(path.name + ".write.lock"), blocking=True))
            return held
        conn = held.enter_context(self._db.engine.connect())
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _WRITE_LOCK_KEY})
        conn.commit()

        def unlock() -> None:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _WRITE_LOCK_KEY})
                conn.commit()
            except SQLAlchemyError as exc:  # the connection is gone: so is the lock
                log.warning("releasing the writers' lock: %s", exc)

        held.callback(unlock)
        return held


def default_holder() -> str:
    """Who holds a lease: host and pid, readable in messages."""
    return f"{os.uname().nodename}:{os.getpid()}"


def new_holder() -> str:
    """A holder unique to one user in this process ("host:pid:id"): two users in one process
    exclude each other too, and the pid says whether a holder on this host still runs."""
    return f"{default_holder()}:{uuid.uuid4().hex[:8]}"


def upsert(
    conn: Connection, table: Table, values: dict[str, Any], *, key: str | tuple[str, ...], update: dict[str, Any],
    where: ColumnElement[bool] | None = None,
) -> PgInsert | SqliteInsert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET update [WHERE where]`` in the connection's
    dialect (SQLite and PostgreSQL spell it alike, through different constructs)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return insert(table).values(**values).on_conflict_do_update(
        index_elements=[table.c[k] for k in ((key,) if isinstance(key, str) else key)], set_=update, where=where
    )
