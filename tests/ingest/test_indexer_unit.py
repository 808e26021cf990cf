"""The indexer over in-memory fakes (hashing embedder, in-memory vector store) and the real, fast
BM25 index, tokenizer and registry: what ``test_indexer.py`` checks on e5 and Milvus Lite, in
milliseconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import Chunker
from ingest.indexer import Indexer
from ingest.registry import Registry
from ingest.settings import ChunkerSettings
from ingest.stores.bm25_index import BM25Index
from ingest.text_tokenizer import BM25Tokenizer
from ingest.types import Chunk
from tests.support.documents import FAQ_EN, HANDBOOK_ZH, valid_pdf
from tests.support.fakes import HashingEmbedder, InMemoryVectorStore

NOTES_TXT = b"Release notes.\n\nVersion 2.1 adds a dark mode and fixes the zebra export bug.\n"


class Stores:
    """One indexer over the fakes, and its stores."""

    def __init__(self, tmp_path: Path) -> None:
        self.embedder = HashingEmbedder(dim=128, max_tokens=64)
        self.vectors = InMemoryVectorStore(self.embedder.dim)
        self.bm25 = BM25Index()  # in memory
        self.tokenizer = BM25Tokenizer()
        self.registry = Registry(tmp_path / "registry.db")
        chunker = Chunker(ChunkerSettings(target_tokens=24, overlap_tokens=4), self.embedder)
        self.indexer = Indexer(
            self.embedder, chunker, self.vectors, self.bm25, self.tokenizer, self.registry, batch_chunks=4
        )

    def ids(self) -> set[str]:
        """The chunk ids, after checking that the registry, the vectors and BM25 agree."""
        reg, vec, bm = self.registry.chunk_ids(), self.vectors.all_ids(), self.bm25.ids()
        assert reg == vec == bm
        assert self.vectors.count() == len(self.bm25) == self.registry.chunk_count() == len(reg)
        return reg

    def ingest_all(self) -> None:
        for name, data in (("handbook_zh.md", HANDBOOK_ZH), ("faq_en.md", FAQ_EN), ("notes.txt", NOTES_TXT)):
            assert self.indexer.ingest_bytes(name, data).indexed == [name]


@pytest.fixture
def stores(tmp_path: Path):
    s = Stores(tmp_path)
    yield s
    s.registry.close()


def test_ingest_writes_every_chunk_to_every_store(stores: Stores) -> None:
    stores.ingest_all()
    ids = stores.ids()
    by_source = {d.source: stores.registry.chunk_ids(d.source) for d in stores.registry.documents()}
    assert set(by_source) == {"handbook_zh.md", "faq_en.md", "notes.txt"}
    assert all(by_source.values()) and len(ids) == sum(map(len, by_source.values()))
    assert len(ids) > 3  # small chunks: documents are split
    # Each chunk fits the embedder's limit, counted the embedder's way; its vector is the chunk's own,
    # heading path included (indexed_text).
    rows = stores.vectors.fetch(sorted(ids))
    assert any(chunk.section and chunk.indexed_text != chunk.text for chunk, _ in rows.values())
    for chunk, vector in rows.values():
        assert stores.embedder.count_tokens([chunk.indexed_text])[0] <= stores.embedder.max_tokens
        np.testing.assert_allclose(vector, stores.embedder.embed_documents([chunk.indexed_text])[0], rtol=1e-6)
    hits = stores.bm25.search(stores.tokenizer.tokenize("带薪年假"), 1)
    assert hits and hits[0][0] in by_source["handbook_zh.md"]
    (dense,) = stores.vectors.search(stores.embedder.embed_queries(["maximum upload size"]), 1)
    assert dense[0][0].source == "faq_en.md"


def test_ingesting_again_is_idempotent_and_embeds_nothing(stores: Stores) -> None:
    stores.ingest_all()
    ids = stores.ids()
    calls = dict(stores.embedder.calls)
    again = [stores.indexer.ingest_bytes(n, d) for n, d in (("handbook_zh.md", HANDBOOK_ZH), ("faq_en.md", FAQ_EN))]
    assert [r.unchanged for r in again] == [["handbook_zh.md"], ["faq_en.md"]]
    assert all(r.indexed == [] and r.chunks_added == 0 for r in again)
    assert stores.ids() == ids and stores.embedder.calls == calls
    # The same content under another name is a duplicate, not a second copy.
    duplicate = stores.indexer.ingest_bytes("copy.md", FAQ_EN)
    assert duplicate.duplicates == [("copy.md", "faq_en.md")] and stores.ids() == ids


def test_an_edit_replaces_only_that_documents_chunks(stores: Stores) -> None:
    stores.ingest_all()
    before = {d.source: stores.registry.chunk_ids(d.source) for d in stores.registry.documents()}
    edited = FAQ_EN + b"\n## Zebras\n\nBeacon now indexes zebrafish lab notebooks.\n"
    report = stores.indexer.ingest_bytes("faq_en.md", edited)
    assert report.indexed == ["faq_en.md"] and report.chunks_removed > 0
    after = {d.source: stores.registry.chunk_ids(d.source) for d in stores.registry.documents()}
    assert after["handbook_zh.md"] == before["handbook_zh.md"] and after["notes.txt"] == before["notes.txt"]
    gone = before["faq_en.md"] - after["faq_en.md"]
    assert gone and not gone & stores.ids()
    hits = stores.bm25.search(stores.tokenizer.tokenize("zebrafish notebooks"), 1)
    assert hits and hits[0][0] in after["faq_en.md"]


def test_delete_leaves_nothing_behind(stores: Stores) -> None:
    stores.ingest_all()
    doomed = stores.registry.chunk_ids("handbook_zh.md")
    assert stores.indexer.delete_sources(["handbook_zh.md"]) == len(doomed) > 0
    assert stores.registry.get("handbook_zh.md") is None and not doomed & stores.ids()
    assert stores.indexer.delete_sources(["faq_en.md", "notes.txt", "never-indexed.md"]) > 0
    assert stores.ids() == set() and stores.registry.documents() == []
    assert stores.bm25.search(stores.tokenizer.tokenize("带薪年假"), 5) == []


def test_check_repairs_drift_between_the_stores(stores: Stores) -> None:
    stores.ingest_all()
    ids = stores.ids()
    assert stores.indexer.check(repair=False).consistent
    # Orphans in both stores (a crash before the registry commit) and a chunk BM25 lost.
    victim = sorted(ids)[0]
    stores.bm25.delete([victim])
    stores.bm25.add(["orphan-1"], [["orphan"]])
    stores.vectors.upsert([Chunk("orphan-2", "d" * 64, "ghost.md", "ghost", 0)], np.ones((1, 128), np.float32))
    drift = stores.indexer.check(repair=False)
    assert not drift.consistent and drift.orphans == 2 and drift.missing_bm25 == 1
    repaired = stores.indexer.check(repair=True)
    assert repaired.orphans_removed == 2 and repaired.bm25_restored == 1 and repaired.agree_now
    assert stores.ids() == ids


def test_a_renamed_file_keeps_its_vectors(stores: Stores, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.md").write_bytes(FAQ_EN)
    (folder / "handbook.md").write_bytes(HANDBOOK_ZH)
    first = stores.indexer.sync_folder(folder)
    assert sorted(Path(s).name for s in first.indexed) == ["faq.md", "handbook.md"]
    ids, calls = stores.ids(), dict(stores.embedder.calls)
    (folder / "faq.md").rename(folder / "questions.md")
    report = stores.indexer.sync_folder(folder)
    new = str((folder / "questions.md").resolve())
    assert report.renamed == [(str((folder / "faq.md").resolve()), new)] and not report.indexed
    assert stores.ids() == ids and stores.embedder.calls == calls  # re-pointed, not re-embedded
    rows = stores.vectors.fetch(sorted(stores.registry.chunk_ids(new)))
    assert rows and all(chunk.source == new for chunk, _ in rows.values())


def test_what_a_loader_left_out_is_in_the_report_and_the_files_event(stores: Stores) -> None:
    # A Markdown file's bytes are a PDF: loaded as a PDF, and the report says so.
    events: list = []
    report = stores.indexer.ingest_bytes("scan_named.md", valid_pdf(), events.append)
    assert report.indexed == ["scan_named.md"]
    note = "extension '.md' but content is a PDF; loading it as PDF"
    assert report.notes == [("scan_named.md", note)]
    assert events[-1].status == "indexed" and events[-1].detail.endswith(f"chunks; {note}")
