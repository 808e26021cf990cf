"""The state database: migrations from empty on SQLite and a real PostgreSQL server, a registry made
before migrations existed opened in place, clear errors for bad or unreachable URLs."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from ingest.registry import Registry
from ingest.state import StateDatabase, StateDatabaseError
from tests.support.old_layouts import REGISTRY_SCHEMA_0001 as PRE_MIGRATION_SCHEMA

HEAD = "0006"  # the newest migration
TABLES = {"alembic_version", "documents", "chunks", "stale_meta", "leases", "ticks", "kb_values", "jobs"}


def _revision(db: StateDatabase) -> str:
    with db.read() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_from_empty_create_every_table(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    db = StateDatabase(url).warm_up()
    try:
        assert db.dialect == backend
        with db.read() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
        assert _revision(db) == HEAD
        StateDatabase(url).warm_up().close()  # a second opener finds nothing to do
        assert _revision(db) == HEAD
    finally:
        db.close()


def test_a_registry_from_before_migrations_opens_in_place(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(PRE_MIGRATION_SCHEMA)
        conn.execute("INSERT INTO documents VALUES ('a.md', 'd1', 'markdown', 'A', 2, 1.0)")
        conn.executemany("INSERT INTO chunks VALUES (?, 'a.md', ?)", [("c1", 0), ("c2", 1)])
    registry = Registry(path)
    try:
        assert registry.ordered_chunk_ids("a.md") == ["c1", "c2"]  # kept, not re-created
        assert _revision(registry.db) == HEAD
        assert registry.put("b.md", "d2", "markdown", "B", ["c3"]) == set()
        assert registry.chunk_count() == 3
        assert Registry(registry.db, kb="other").documents() == []  # the old rows are the default knowledge base's
    finally:
        registry.close()


def test_the_url_password_never_shows(tmp_path: Path) -> None:
    db = StateDatabase("postgresql+psycopg://rag:s3cret@db.example:5432/rag")
    assert "s3cret" not in db.display_url() and "***" in db.display_url()


def test_bad_and_unreachable_urls_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateDatabaseError, match="sqlite:/// or postgresql://"):
        StateDatabase("mysql://x@localhost/db").warm_up()
    with pytest.raises(StateDatabaseError, match="in-memory"):
        StateDatabase("sqlite://").warm_up()
    missing = tmp_path / "no-server"
    with pytest.raises(StateDatabaseError, match=r"cannot open the state database postgresql\+psycopg://rag:\*\*\*@") as info:
        StateDatabase(f"postgresql+psycopg://rag:pw@/rag?host={missing}").warm_up()
    assert "pw@" not in str(info.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_named_values_are_shared_and_replaced_whole(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from ingest.state.values import get_value, put_value, updated_at

    url = f"sqlite:///{tmp_path / 'state.sqlite3'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    writer, reader = StateDatabase(url).warm_up(), StateDatabase(url).warm_up()  # two replicas
    try:
        assert get_value(reader, "calibration") is None and updated_at(reader, "calibration") is None
        first = put_value(writer, "calibration", '{"min_value": 0.1}')
        assert get_value(reader, "calibration") == ('{"min_value": 0.1}', first)
        second = put_value(writer, "calibration", '{"min_value": 0.2}')
        assert second >= first and get_value(reader, "calibration") == ('{"min_value": 0.2}', second)
        assert updated_at(reader, "calibration") == second
    finally:
        writer.close()
        reader.close()
