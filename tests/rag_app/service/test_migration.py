"""``rag-ingest --migrate-from``: a knowledge base of the embedded default (Milvus Lite, in-process
BM25 files, SQLite) moved to Milvus full-text search and a real PostgreSQL, without re-embedding,
resumable after an interruption, and answering as before."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.settings import BM25Settings, MilvusSettings
from rag_app.cli import ingest as ingest_cli
from rag_app.config import DatabaseSettings, load_settings
from rag_app.service.migration import migrate
from tests.support.knowledge_base import assert_stores_agree
from tests.support.paths import SAMPLES

QUERIES = ("入职满五年的正式员工每年有几天带薪年假？", "How do I report a security incident?", "会议纪要")


class Interrupted(Exception):
    pass


def test_migration_to_milvus_full_text_and_postgresql_is_resumable_and_answers_alike(
    make_kb, tmp_path: Path, postgres_url: str
) -> None:
    old = make_kb(tmp_path / "old")
    assert old.indexer.ingest_paths([SAMPLES]).indexed
    before = {q: [(c.source, c.chunk_id) for c in old.ready_retriever().run(q, top_k=5).chunks] for q in QUERIES}
    old_chunks = assert_stores_agree(old)
    old_settings = old.settings
    old.close()

    new = make_kb(
        tmp_path / "new", milvus=MilvusSettings(uri=str(tmp_path / "new-milvus" / "milvus.db")),
        bm25=BM25Settings(backend="milvus"), database=DatabaseSettings(url=postgres_url),
    )
    # Cut short after two documents: what was copied stays, the rest follows on the next run.
    def stop_after_two(done: int, total: int, source: str) -> None:
        if done == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        migrate(old_settings, new, stop_after_two)
    assert len(new.registry.documents()) == 2
    report = migrate(old_settings, new)
    assert (report.documents, report.copied, report.already_there, report.incomplete) == (6, 4, 2, [])
    assert report.check is not None and report.check.agree_now
    assert assert_stores_agree(new) == old_chunks  # the same chunk ids: nothing re-chunked or re-embedded
    assert new.bm25 is None and new.settings.database_url.startswith("postgresql")
    for query, hits in before.items():
        got = [(c.source, c.chunk_id) for c in new.ready_retriever().run(query, top_k=5).chunks]
        assert got[0] == hits[0], query  # the same best chunk (BM25 now scored by Milvus)
    again = migrate(old_settings, new)
    assert (again.copied, again.already_there) == (0, 6)
    with pytest.raises(ValueError, match="share a Milvus collection or a state database"):
        migrate(new.settings, new)


def test_the_cli_names_a_missing_source_and_refuses_the_same_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], e5_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    data = ["--data-dir", str(tmp_path / "data")]
    assert ingest_cli.main(["--migrate-from", str(tmp_path / "nowhere"), "--no-calibrate", *data]) == 2
    assert "no such config file or data directory" in capsys.readouterr().err
    (tmp_path / "data").mkdir(exist_ok=True)
    assert ingest_cli.main(["--migrate-from", str(tmp_path / "data"), "--no-calibrate", *data]) == 2
    assert "share a Milvus collection or a state database" in capsys.readouterr().err
    assert load_settings(data_dir=tmp_path).bm25.backend == "local"  # nothing changed the default
