"""The registry's transactions, the same on SQLite (the embedded default) and a real PostgreSQL."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.registry import Registry
from ingest.state import StateDatabase


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    reg = Registry(StateDatabase(url))
    yield reg
    reg.close()


def test_put_replaces_a_sources_chunks_and_returns_the_ones_it_lost(registry: Registry) -> None:
    assert registry.put("a.md", "d1", "markdown", "A", ["c1", "c2", "c3"]) == set()
    assert registry.put("a.md", "d2", "markdown", "A v2", ["c3", "c4"]) == {"c1", "c2"}
    record = registry.get("a.md")
    assert record is not None and (record.doc_id, record.title, record.chunk_count) == ("d2", "A v2", 2)
    assert registry.ordered_chunk_ids("a.md") == ["c3", "c4"]
    assert registry.chunk_ids() == {"c3", "c4"} and registry.chunk_count() == 2
    assert registry.source_of("d2") == "a.md" and registry.source_of("d1") is None
    assert registry.put("empty.md", "d3", "markdown", "", []) == set()
    assert [d.source for d in registry.documents()] == ["a.md", "empty.md"]


def test_rename_keeps_chunks_marks_stale_meta_and_refuses_conflicts(registry: Registry) -> None:
    registry.put("old.md", "d1", "markdown", "old", ["c1", "c2"])
    registry.put("other.md", "d2", "markdown", "other", ["c9"])
    assert registry.rename("old.md", "new.md", title="new") == {"c1", "c2"}
    assert registry.get("old.md") is None and registry.get("new.md").title == "new"  # type: ignore[union-attr]
    assert registry.ordered_chunk_ids("new.md") == ["c1", "c2"]
    assert registry.stale_meta_sources() == ["new.md"]
    registry.clear_stale_meta(["new.md"])
    assert registry.stale_meta_sources() == []
    with pytest.raises(KeyError):
        registry.rename("gone.md", "x.md")
    with pytest.raises(ValueError, match="already registered"):
        registry.rename("new.md", "other.md")
    assert registry.chunk_ids("other.md") == {"c9"}  # the failed rename changed nothing


def test_remove_forgets_documents_chunks_and_stale_marks(registry: Registry) -> None:
    registry.put("a.md", "d1", "markdown", "", ["c1"])
    registry.put("b.md", "d2", "markdown", "", ["c2", "c3"])
    registry.rename("b.md", "c.md")
    assert registry.remove(["a.md", "c.md", "never.md"]) == {"c1", "c2", "c3"}
    assert registry.documents() == [] and registry.chunk_count() == 0 and registry.stale_meta_sources() == []
    many = [f"f{i}.md" for i in range(600)]  # more than one IN (...) batch
    for i, source in enumerate(many):
        registry.put(source, f"d{i}", "markdown", "", [f"k{i}"])
    assert len(registry.remove(many)) == 600 and registry.chunk_count() == 0


def test_a_chunk_id_belongs_to_one_source(registry: Registry) -> None:
    """Chunk ids hash content: a second source with the same chunks is a duplicate, never a second copy."""
    registry.put("a.md", "d1", "markdown", "", ["c1"])
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        registry.put("b.md", "d1", "markdown", "", ["c1"])
    assert registry.get("b.md") is None and registry.chunk_ids() == {"c1"}  # rolled back whole


def test_knowledge_bases_share_the_tables_but_never_see_each_others_rows(registry: Registry) -> None:
    other = Registry(registry.db, kb="k2")
    # The same file and the same content in both: one key per knowledge base, no clash.
    registry.put("a.md", "d1", "markdown", "A", ["c1", "c2"])
    other.put("a.md", "d1", "markdown", "A in k2", ["c1", "c2"])
    other.put("b.md", "d2", "markdown", "B", ["c3"])
    assert [d.source for d in registry.documents()] == ["a.md"] and registry.chunk_count() == 2
    assert other.get("a.md").title == "A in k2" and other.chunk_ids() == {"c1", "c2", "c3"}  # type: ignore[union-attr]
    assert registry.source_of("d2") is None and other.source_of("d2") == "b.md"
    other.rename("a.md", "moved.md")
    assert registry.get("a.md") is not None and registry.stale_meta_sources() == []
    assert other.remove(["moved.md"]) == {"c1", "c2"} and registry.chunk_ids() == {"c1", "c2"}
    assert other.remove_all() == 1 and other.documents() == [] and other.chunk_count() == 0
    assert registry.chunk_count() == 2 and registry.scoped_name("sync") == "sync"
    assert other.scoped_name("sync") == "sync:k2"
