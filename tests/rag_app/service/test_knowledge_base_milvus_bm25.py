"""A knowledge base with ``bm25.backend: milvus``: keyword search by Milvus Lite itself, end to end
(the real e5 model, Milvus Lite, the registry; no in-process BM25 index)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.settings import BM25Settings
from ingest.stores.milvus_keyword import MilvusKeywordIndex
from tests.support.knowledge_base import assert_stores_agree
from tests.support.paths import SAMPLES

FILES = ("employee_handbook_zh.md", "product_faq_en.md", "security_policy_en.html")


def test_milvus_keyword_search_end_to_end(make_kb, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in FILES:
        shutil.copy(SAMPLES / name, folder / name)
    kb = make_kb(bm25=BM25Settings(backend="milvus"))
    assert kb.bm25 is None and isinstance(kb.keyword_index, MilvusKeywordIndex)
    assert kb.retriever.keyword.index is kb.keyword_index

    report = kb.indexer.ingest_paths([folder])
    assert len(report.indexed) == len(FILES) and not report.failed
    ids = assert_stores_agree(kb)
    assert len(ids) == report.chunks_added
    assert not kb.settings.bm25_dir.exists()  # no in-process index was written

    zh, en = str(folder / "employee_handbook_zh.md"), str(folder / "product_faq_en.md")
    zh_hits = kb.keyword_index.search(kb.tokenizer.tokenize("带薪年假"), 3)
    assert zh_hits and zh_hits[0][0] in kb.registry.chunk_ids(zh)
    en_hits = kb.keyword_index.search(kb.tokenizer.tokenize("free trial credit card"), 3)
    assert en_hits and en_hits[0][0] in kb.registry.chunk_ids(en)

    # The retriever's keyword leg reads Milvus: scores and coverage come with the chunks.
    result = kb.retriever.run("Is there a free trial of Lumen Beacon?")
    top = result.chunks[0] if result.chunks else result.below_threshold[0]
    assert top.source == en and top.bm25_score > 0 and 0 < top.bm25_coverage <= 1 + 1e-6

    doomed = kb.registry.chunk_ids(zh)
    assert kb.indexer.delete_sources([zh]) == len(doomed)
    assert not {cid for cid, _ in kb.keyword_index.search(kb.tokenizer.tokenize("带薪年假 员工"), 50)} & doomed
    assert assert_stores_agree(kb) == ids - doomed

    check = kb.indexer.check()
    assert check.consistent and check.registry == check.milvus == check.bm25 == len(ids - doomed)


def test_milvus_keyword_search_needs_the_milvus_store(tmp_path: Path) -> None:
    from rag_app.config import Settings
    from rag_app.service import KnowledgeBase
    from tests.support.fakes import HashingEmbedder, InMemoryVectorStore

    kb = KnowledgeBase(
        Settings(data_dir=tmp_path, bm25=BM25Settings(backend="milvus")),
        embedder=HashingEmbedder(), vectors=InMemoryVectorStore(8),
    )
    with pytest.raises(ValueError, match="bm25.backend: milvus"):
        kb.warm_up()
