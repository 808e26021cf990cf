"""Indexing keeps the registry, Milvus Lite and the BM25 index in step (real components)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import update

import ingest.indexer as indexer_mod
from ingest.beir import corpus_id_of, iter_corpus
from ingest.state.schema import documents
from ingest.types import INDEX_FORMAT, indexed_text, sha256_hex
from tests.support.knowledge_base import assert_stores_agree
from tests.support.paths import SAMPLES


def _copy_samples(dest: Path) -> Path:
    shutil.copytree(SAMPLES, dest)
    return dest


def test_ingesting_twice_adds_nothing(make_kb, tmp_path: Path) -> None:
    folder = _copy_samples(tmp_path / "docs")
    kb = make_kb()
    first = kb.indexer.ingest_paths([folder])
    assert len(first.indexed) == 6 and not first.failed
    ids = assert_stores_agree(kb)
    assert len(ids) == first.chunks_added > 6

    second = kb.indexer.ingest_paths([folder])
    assert second.indexed == [] and len(second.unchanged) == 6 and second.chunks_added == 0
    assert assert_stores_agree(kb) == ids


def test_editing_one_file_replaces_only_its_chunks(make_kb, tmp_path: Path) -> None:
    folder = _copy_samples(tmp_path / "docs")
    kb = make_kb()
    kb.indexer.ingest_paths([folder])
    before = {d.source: kb.registry.chunk_ids(d.source) for d in kb.registry.documents()}
    edited = folder / "product_faq_en.md"
    edited.write_text(
        edited.read_text(encoding="utf-8") + "\n\n## Zebra support\n\nBeacon now indexes zebrafish lab notebooks.\n",
        encoding="utf-8",
    )
    report = kb.indexer.ingest_paths([folder])
    assert report.indexed == [str(edited)] and len(report.unchanged) == 5
    after = {d.source: kb.registry.chunk_ids(d.source) for d in kb.registry.documents()}
    for source, ids in before.items():
        if source != str(edited):
            assert after[source] == ids  # untouched
    old_only = before[str(edited)] - after[str(edited)]
    assert old_only, "the edited file's changed chunks get new ids"
    all_ids = assert_stores_agree(kb)
    assert not (old_only & all_ids)
    hits = kb.bm25.search(kb.tokenizer.tokenize("zebrafish notebooks"), 3)
    assert hits and hits[0][0] in after[str(edited)]


def test_a_document_indexed_in_an_older_format_is_indexed_again(make_kb, tmp_path: Path) -> None:
    # Format 1 embedded a chunk's text alone; format 2 puts its heading path on top (indexed_text).
    folder = _copy_samples(tmp_path / "docs")
    kb = make_kb()
    kb.indexer.ingest_paths([folder])
    faq = str(folder / "product_faq_en.md")
    ids = kb.registry.chunk_ids(faq)
    with kb.registry.db.write() as conn:  # as a knowledge base indexed before format 2 has it
        conn.execute(update(documents).where(documents.c.source == faq).values(index_format=1))
    assert kb.registry.get(faq).index_format == 1  # type: ignore[union-attr]

    report = kb.indexer.ingest_paths([folder])
    assert report.indexed == [faq] and len(report.unchanged) == 5
    assert kb.registry.get(faq).index_format == INDEX_FORMAT  # type: ignore[union-attr]
    assert kb.registry.chunk_ids(faq) == ids  # same text, same ids: re-embedded in place
    assert_stores_agree(kb)
    stored = kb.vectors.fetch(sorted(ids))
    chunk, vector = next((c, v) for c, v in stored.values() if "$12 per user" in c.text)
    assert chunk.section.endswith("How much does Lumen Beacon cost?")
    assert kb.vectors.get_indexed_texts([chunk.chunk_id])[chunk.chunk_id] == indexed_text(chunk.text, chunk.section)
    expected = kb.embedder.embed_documents([chunk.indexed_text])[0]
    assert float(vector @ expected) > 0.999
    assert kb.indexer.ingest_paths([folder]).indexed == []


def test_deleting_a_source_leaves_nothing_behind(make_kb, tmp_path: Path) -> None:
    folder = _copy_samples(tmp_path / "docs")
    kb = make_kb()
    kb.indexer.ingest_paths([folder])
    source = str(folder / "employee_handbook_zh.md")
    doomed = kb.registry.chunk_ids(source)
    removed = kb.indexer.delete_sources([source])
    assert removed == len(doomed) > 0
    ids = assert_stores_agree(kb)
    assert not (doomed & ids)
    assert kb.registry.get(source) is None
    result = kb.retriever.run("入职满五年的正式员工每年有几天带薪年假？")
    assert all(c.source != source for c in result.chunks + result.below_threshold)


def test_bad_files_are_reported_and_lose_nothing(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    good = _copy_samples(tmp_path / "docs")
    kb.indexer.ingest_paths([good])
    ids_before = assert_stores_agree(kb)

    bad = tmp_path / "bad"
    bad.mkdir()
    pdf = (SAMPLES / "release_notes_en.pdf").read_bytes()
    (bad / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    (bad / "empty.md").write_bytes(b"")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (bad / "notes_gbk.txt").write_bytes("差旅补贴标准为每天三百元，需在出差结束后七天内申请。".encode("gbk"))
    (bad / "tool.exe").write_bytes(b"MZ\x90\x00")
    report = kb.indexer.ingest_paths([bad])

    failed = dict(report.failed)
    assert set(failed) == {str(bad / "empty.md"), str(bad / "binary.txt"), str(bad / "truncated.pdf")} or (
        # a truncated PDF may still yield its readable first page: then it is indexed, not failed
        set(failed) == {str(bad / "empty.md"), str(bad / "binary.txt")}
        and str(bad / "truncated.pdf") in report.indexed
    )
    assert "empty" in failed[str(bad / "empty.md")]
    assert "binary" in failed[str(bad / "binary.txt")]
    assert str(bad / "notes_gbk.txt") in report.indexed
    assert dict(report.skipped)[str(bad / "tool.exe")].startswith("unsupported file type")
    ids_after = assert_stores_agree(kb)
    assert ids_before <= ids_after
    hits = kb.bm25.search(kb.tokenizer.tokenize("差旅补贴"), 1)
    assert hits and hits[0][0] in kb.registry.chunk_ids(str(bad / "notes_gbk.txt"))


def test_a_changed_file_that_became_corrupt_keeps_its_last_good_version(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    doc = tmp_path / "guide.pdf"
    shutil.copy(SAMPLES / "release_notes_en.pdf", doc)
    kb.indexer.ingest_paths([doc])
    ids = kb.registry.chunk_ids(str(doc))
    doc.write_bytes(b"%PDF-1.7\n garbage that is not a PDF body")
    report = kb.indexer.ingest_paths([doc])
    assert report.failed and report.failed[0][0] == str(doc)
    assert kb.registry.chunk_ids(str(doc)) == ids
    assert_stores_agree(kb)


def test_identical_content_under_two_names_is_indexed_once(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SAMPLES / "product_faq_en.md", folder / "a.md")
    shutil.copy(SAMPLES / "product_faq_en.md", folder / "b.md")
    report = kb.indexer.ingest_paths([folder])
    assert report.indexed == [str(folder / "a.md")]
    assert report.duplicates == [(str(folder / "b.md"), str(folder / "a.md"))]
    assert_stores_agree(kb)


def test_ingest_bytes_with_the_callers_digest_records_the_same_doc_id(make_kb, monkeypatch) -> None:
    data = (SAMPLES / "product_faq_en.md").read_bytes()
    digest = sha256_hex(data)
    hashed_here, passed_in = make_kb(), make_kb()
    assert hashed_here.indexer.ingest_bytes("faq.md", data).indexed == ["faq.md"]

    def no_rehash(_: bytes) -> str:
        raise AssertionError("ingest_bytes hashed bytes whose digest it was given")

    monkeypatch.setattr(indexer_mod, "sha256_hex", no_rehash)
    assert passed_in.indexer.ingest_bytes("faq.md", data, sha256=digest).indexed == ["faq.md"]
    assert hashed_here.registry.get("faq.md").doc_id == passed_in.registry.get("faq.md").doc_id == digest
    assert passed_in.indexer.ingest_bytes("faq.md", data, sha256=digest).unchanged == ["faq.md"]


def test_check_repairs_drift_between_the_stores(make_kb, tmp_path: Path) -> None:
    kb = make_kb()
    kb.indexer.ingest_paths([_copy_samples(tmp_path / "docs")])
    ids = assert_stores_agree(kb)
    assert kb.indexer.check(repair=False).consistent

    # A crash between the store writes and the registry commit leaves orphans; a BM25 save lost
    # leaves the registry ahead of BM25.
    victim = sorted(ids)[0]
    kb.bm25.delete([victim])
    kb.bm25.add(["orphan-1"], [["orphan", "token"]])
    chunk = next(iter(kb.vectors.fetch([sorted(ids)[1]]).values()))
    from ingest.types import Chunk

    orphan = Chunk("orphan-2", "d" * 64, "ghost.md", "ghost text", 0)
    kb.vectors.upsert([orphan], chunk[1][None, :])
    drift = kb.indexer.check(repair=False)
    assert not drift.consistent

    repaired = kb.indexer.check(repair=True)
    assert repaired.orphans_removed == 2 and repaired.bm25_restored == 1
    assert assert_stores_agree(kb) == ids
    assert kb.indexer.check(repair=False).consistent


def test_beir_corpus_ingests_through_the_adapter(make_kb, tmp_path: Path) -> None:
    beir = tmp_path / "tiny-beir"
    beir.mkdir()
    rows = [
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces the risk of heart attack in adults."},
        {"_id": "d2", "title": "", "text": "长城是中国古代的军事防御工程。"},
        {"_id": "d3", "title": "Empty", "text": ""},
    ]
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    kb = make_kb()
    report = kb.indexer.ingest_documents(iter_corpus(beir))
    assert len(report.indexed) == 3
    assert_stores_agree(kb)
    hits = kb.bm25.search(kb.tokenizer.tokenize("长城"), 1)
    source = kb.vectors.fetch([hits[0][0]])[hits[0][0]][0].source
    assert corpus_id_of(source) == "d2"
