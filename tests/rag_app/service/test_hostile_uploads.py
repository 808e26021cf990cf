"""Hostile uploads through the UI's code path (``RagService.upload``, as the Gradio upload
handler calls it) on a real knowledge base (Milvus Lite, e5, BM25, registry).

A corpus of bad files, made here: each file gets its own clear result, and what was indexed before
is untouched: the same documents with the same chunk ids, store counts that grew only by what was
accepted, and the same answer sets for real queries before and after.
"""
from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.loaders import LoaderSettings, load_document
from rag_app.config import UISettings
from rag_app.service import RagService, sanitize_filename
from rag_app.service.uploads import UploadStore
from rag_app.web import create_app
from tests.support.documents import PE_HEADER, docx_bomb, make_pdf, make_xlsx, png_header_only
from tests.support.paths import SAMPLES

MB = 1024 * 1024
ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"
BASELINE = ["employee_handbook_zh.md", "release_notes_en.pdf"]
GBK_NOTE = "青鸟项目会议纪要\n\n青鸟项目的预算为 360 万元，计划于 2025 年 3 月 1 日上线。\n负责人：王芳。\n"


# --- helpers ----------------------------------------------------------------------------------------


def _service(kb) -> RagService:
    # The LLM backend is only built when a question needs it; these tests never ask one.
    return RagService.open(kb.settings, kb=kb)


def _upload(service: RagService, files: list) -> dict[str, tuple[str, str]]:
    job = service.upload(files)
    assert job.wait(300), "upload job did not finish"
    assert job.state == "done", job.error
    return {r.name: (r.status, r.detail) for r in job.snapshot()}


def _snapshot(service: RagService) -> dict:
    kb = service.kb
    docs = {d["source"]: d for d in service.documents()}
    return {
        "docs": docs,
        "ids": {source: kb.registry.chunk_ids(source) for source in docs},
        "counts": service.status()["counts"],
        "answers": {q: [c.chunk_id for c in kb.retriever.run(q).chunks] for q in (ZH_Q, EN_Q)},
    }


def _assert_stores_agree(service: RagService) -> None:
    kb = service.kb
    assert kb.registry.chunk_ids() == kb.vectors.all_ids() == kb.bm25.ids()
    counts = service.status()["counts"]
    assert counts["registry_chunks"] == counts["milvus_chunks"] == counts["bm25_chunks"]


def _assert_untouched(before: dict, service: RagService, added_chunks: int) -> None:
    """The previously indexed documents keep their chunks, and the queries their answers."""
    after = _snapshot(service)
    for source, ids in before["ids"].items():
        assert after["ids"].get(source) == ids, f"{source} changed"
        assert after["docs"][source]["chunks"] == before["docs"][source]["chunks"]
    for key in ("registry_chunks", "milvus_chunks", "bm25_chunks"):
        assert after["counts"][key] == before["counts"][key] + added_chunks, key
    for question, old in before["answers"].items():
        new = after["answers"][question]
        # Added documents change BM25's corpus statistics, so the tail of a ranking may reorder;
        # the best answer must not move. With nothing added, the whole answer set is the same.
        assert (new == old) if not added_chunks else (new[0] == old[0]), question
    _assert_stores_agree(service)


def _uploads_folder(service: RagService) -> set[str]:
    root = service.uploads.root
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


@pytest.fixture
def indexed(make_kb):
    """A knowledge base with two sample documents uploaded (as files on disk, like Gradio's)."""
    kb = make_kb(loaders=LoaderSettings(max_pdf_pages=5))
    service = _service(kb)
    results = _upload(service, [(name, SAMPLES / name) for name in BASELINE])
    assert all(status == "indexed" for status, _ in results.values()), results
    before = _snapshot(service)
    # The queries really hit the baseline documents (so "unchanged answers" means something).
    top = {q: service.kb.retriever.run(q).chunks[0].source for q in (ZH_Q, EN_Q)}
    assert Path(top[ZH_Q]).name.startswith("employee_handbook_zh")
    assert Path(top[EN_Q]).name.startswith("release_notes_en")
    yield service, before
    service.close(stores=False)


# --- the bad-file corpus ------------------------------------------------------------------------------


def _plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.md", "# Notes\n\nInside an archive.")
        zf.writestr("more/guide.txt", "More text.")
    return buf.getvalue()


def test_bad_file_corpus_each_gets_its_own_result_and_nothing_indexed_changes(indexed, tmp_path: Path) -> None:
    service, before = indexed
    stored_before = _uploads_folder(service)

    # Files on disk, like Gradio's temp files (the service stats and sniffs them before reading).
    disk = tmp_path / "client"
    disk.mkdir()
    huge_text = disk / "huge_log.txt"  # 50 MB of real text: the default per-file limit admits it ...
    line = b"2024-07-15 12:00:00 INFO request served in 12 ms by worker 3\n"
    with huge_text.open("wb") as fh:
        fh.write(line * (50 * MB // len(line)))
    assert 49 * MB < huge_text.stat().st_size <= 50 * MB
    oversized = disk / "scan_archive.pdf"  # ... and this one is over it (sparse: costs no disk)
    with oversized.open("wb") as fh:
        fh.truncate(51 * MB)
    truncated = (SAMPLES / "release_notes_en.pdf").read_bytes()
    truncated = truncated[: len(truncated) // 2]

    files = [
        ("truncated.pdf", truncated),
        ("quarterly.docx", docx_bomb(50)),  # a zip bomb disguised as a Word document
        ("bundle.zip", _plain_zip()),
        ("empty.txt", b""),
        ("random.txt", random.Random(7).randbytes(4096)),  # binary renamed .txt
        ("setup.pdf", PE_HEADER + bytes(4096)),  # an executable renamed .pdf
        ("installer.txt", PE_HEADER + bytes(4096)),  # ... and .txt
        ("scan.pdf", make_pdf([None, None])),  # image-only pages: no text layer, nothing for OCR to read
        ("photo.png", png_header_only(100_000, 100_000)),  # an image bomb: 10^10 pixels declared
        ("prices.xlsx", make_xlsx([("a", 1)] * 50)[:3000]),  # a truncated workbook
        ("blank_rows.csv", b",,,\n" * 100_000),  # 10^5 empty rows
        ("manual.pdf", make_pdf([f"Chapter {i}." for i in range(6)])),  # over the configured 5 pages
        ("huge_log.txt", huge_text),
        ("scan_archive.pdf", oversized),
        ("会议纪要_gbk.txt", GBK_NOTE.encode("gbk")),  # not bad: GBK text is indexed
        ("../../etc/passwd.md", b"# Passwd\n\nA harmless note with a hostile name.\n"),
    ]
    job = service.upload(files)
    # What a size, a name or the first KiB shows is refused at once, before the file is read:
    early = {r.name: r.status for r in job.snapshot()}
    for name in ("huge_log.txt", "scan_archive.pdf", "bundle.zip", "empty.txt", "setup.pdf", "installer.txt"):
        assert early[name] == "failed", (name, early[name])
    assert job.wait(300) and job.state == "done", job.error
    results = {r.name: (r.status, r.detail, r.source) for r in job.snapshot()}

    expected = {
        "truncated.pdf": ("failed", ["not a valid PDF", "truncated or corrupt"]),
        "quarterly.docx": ("failed", ["refused", "expands", "decompression bomb"]),
        "bundle.zip": ("failed", ["archives are not accepted"]),
        "empty.txt": ("failed", ["empty file"]),
        "random.txt": ("failed", ["binary content in a .txt file"]),
        "setup.pdf": ("failed", ["binary content in a .pdf file", "Windows executable"]),
        "installer.txt": ("failed", ["binary content in a .txt file", "Windows executable"]),
        "scan.pdf": ("failed", ["no text layer", "scanned", "OCR"]),
        "photo.png": ("failed", ["image bomb", "10,000,000,000 pixels"]),
        "prices.xlsx": ("failed", ["not a valid .xlsx"]),
        "blank_rows.csv": ("failed", ["no extractable text", "no values"]),
        "manual.pdf": ("failed", ["too many pages (6; the limit is 5 pages per PDF)"]),
        "huge_log.txt": ("failed", ["the text file is 50.0 MB", "limit is 10 MB of text", "split"]),
        "scan_archive.pdf": ("failed", ["51.0 MB is over the 50 MB limit per file"]),
        "会议纪要_gbk.txt": ("indexed", ["chunks"]),
        "passwd.md": ("indexed", ["chunks"]),
    }
    assert set(results) == set(expected)
    for name, (status, needles) in expected.items():
        got_status, detail, _ = results[name]
        assert got_status == status, (name, got_status, detail)
        assert detail and "\n" not in detail
        for needle in needles:
            assert needle.lower() in detail.lower(), (name, detail)

    # The hostile name is only a label: stored inside uploads/, under a sanitised name.
    passwd_source = Path(results["passwd.md"][2])
    assert passwd_source.parent == service.uploads.root and passwd_source.name.startswith("passwd-")
    # Refused files leave nothing behind in uploads/; accepted ones are stored once each.
    stored = _uploads_folder(service) - stored_before
    assert len(stored) == 2 and {Path(results[n][2]).name for n in ("会议纪要_gbk.txt", "passwd.md")} == stored

    # GBK text: indexed as text, findable by a Chinese question.
    gbk = next(d for d in service.documents() if d["file"] == "会议纪要_gbk.txt")
    hits = service.kb.retriever.run("青鸟项目的预算是多少？").chunks
    assert hits and hits[0].source == gbk["source"] and "360 万元" in hits[0].text

    added = sum(d["chunks"] for d in service.documents() if d["source"] not in before["docs"])
    assert added == gbk["chunks"] + next(d["chunks"] for d in service.documents() if d["file"] == "passwd.md")
    _assert_untouched(before, service, added)


def test_upload_limits_per_request_and_per_file(make_kb, tmp_path: Path) -> None:
    """Per-file and per-upload totals (lowered here to keep the test small), and the file count."""
    kb = make_kb(ui=UISettings(max_upload_mb=2, max_request_mb=3, max_files_per_request=5))
    service = _service(kb)
    try:
        filler = b"\x01\x02" * (MB // 2)  # 1 MB that passes the name/size checks and fails in the loader
        files = [
            ("a.txt", filler),
            ("b.txt", filler + b"\x03"),
            ("c.txt", filler * 2),  # 2 MB: a + b + c would be 4 MB > 3 MB
            ("d.md", b"# Small\n\nStill fits in the upload."),
            ("e.txt", filler * 3),  # over the 2 MB per-file limit
            ("f.md", b"# Sixth\n\nOne file too many."),
        ]
        results = _upload(service, files)
        assert results["a.txt"][0] == results["b.txt"][0] == "failed"
        assert "binary content" in results["a.txt"][1]  # judged by the loader: it was read
        assert results["c.txt"] == (
            "failed",
            "the files of this upload together exceed the 3 MB limit per upload; upload this one separately",
        )
        assert results["d.md"][0] == "indexed"
        assert results["e.txt"] == ("failed", "3.0 MB is over the 2 MB limit per file")
        assert results["f.md"] == ("failed", "more than 5 files in one upload")
        assert [d["file"] for d in service.documents()] == ["d.md"]
        _assert_stores_agree(service)
    finally:
        service.close(stores=False)


def test_parse_over_the_time_budget_is_abandoned_and_indexed_documents_stay(make_kb) -> None:
    kb = make_kb(loaders=LoaderSettings(parse_timeout_s=0.01))
    # The baseline is loaded in this process (a 10 ms budget is for the hostile file only).
    docs = [load_document(SAMPLES / name) for name in BASELINE]
    kb.indexer.ingest_documents(docs)
    service = _service(kb)
    try:
        before = _snapshot(service)
        long_pdf = make_pdf([f"Page {i} about the quarterly figures. " * 15 for i in range(150)])
        results = _upload(service, [("long.pdf", long_pdf)])
        status, detail = results["long.pdf"]
        assert status == "failed" and "longer than the 0.01 s budget per file and was abandoned" in detail
        assert not _uploads_folder(service)
        _assert_untouched(before, service, 0)
    finally:
        service.close(stores=False)


def test_hostile_names_are_confined_and_never_overwrite(indexed) -> None:
    service, before = indexed
    files = [
        ("../../etc/passwd.md", b"# Passwd\n\nThe first hostile note mentions zebra crossings.\n"),
        ("C:\\Users\\me\\..\\notes.md", b"# Notes A\n\nThe office plant is watered on Mondays.\n"),
        ("notes.md", b"# Notes B\n\nThe coffee machine is descaled on Fridays.\n"),  # same name, other content
        ("CON.md", b"# Device\n\nA Windows device name as a file name.\n"),
        ("nul\x00byte\x07bell\n.md", b"# Controls\n\nControl characters in the name.\n"),
        ("长" * 300 + ".md", b"# Long\n\nA very long file name.\n"),
        ("report\u202etxt.exe", b"MZ\x00\x00"),  # right-to-left override disguising an .exe
    ]
    job = service.upload(files)
    assert job.wait(300) and job.state == "done"
    results = job.snapshot()
    assert [r.name for r in results] == [
        "passwd.md", "notes.md", "notes.md", "_CON.md", "nulbytebell.md", "长" * 40 + ".md", "reporttxt.exe",
    ]
    assert [r.status for r in results] == ["indexed"] * 6 + ["failed"]
    assert "unsupported file type '.exe'" in results[-1].detail
    root = service.uploads.root
    sources = [Path(r.source) for r in results[:6]]
    for source in sources:
        assert source.parent == root and source.is_file()
        assert len(source.name.encode("utf-8")) <= 255
    # Two different "notes.md": two documents, neither overwrote the other.
    assert len(set(sources)) == 6
    notes = [d for d in service.documents() if d["file"] == "notes.md"]
    assert len(notes) == 2
    for question, fact in (("When is the office plant watered?", "Mondays"), ("When is the coffee machine descaled?", "Fridays")):
        top = service.kb.retriever.run(question).chunks[0]
        assert fact in top.text and Path(top.source) in sources[1:3]
    added = sum(d["chunks"] for d in service.documents() if d["source"] not in before["docs"])
    _assert_untouched(before, service, added)


_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}


@settings(max_examples=500, deadline=None)
@given(name=st.one_of(st.text(max_size=300), st.text(alphabet="./\\\x00\n .-_:¼conCONmd长", max_size=30)))
def test_sanitized_names_are_safe_base_names(name: str) -> None:
    safe = sanitize_filename(name)
    assert safe and safe == sanitize_filename(safe)  # never empty; idempotent
    assert "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert not safe.startswith((".", "-", " ")) and not safe.endswith((".", " "))
    assert all(ch.isprintable() for ch in safe)
    stem = safe.rsplit(".", 1)[0] if "." in safe else safe
    assert stem.split(".")[0].lower() not in _RESERVED
    path = UploadStore(Path("/srv/uploads")).path_for(name, b"data")
    assert path.parent == Path("/srv/uploads") and len(path.name.encode("utf-8")) <= 255


def test_api_refuses_an_oversized_upload_before_reading_it_and_passes_files_through(make_kb) -> None:
    kb = make_kb(ui=UISettings(max_request_mb=1))
    app = create_app(kb.settings, kb, mount_ui=False)
    client = TestClient(app)
    try:
        big = client.post("/api/documents", files=[("files", ("big.txt", b"x" * (3 * MB)))])
        assert big.status_code == 413 and "1 MB limit per upload" in big.json()["detail"]
        # Without a Content-Length (a chunked body), the body itself is cut off at the limit.
        chunked = client.post(
            "/api/documents",
            content=iter([b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n\r\n"]
                         + [b"x" * MB] * 3 + [b"\r\n--b--\r\n"]),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert chunked.status_code == 413
        ok = client.post(
            "/api/documents",
            files=[
                ("files", ("../../etc/passwd.md", b"# Passwd\n\nA note uploaded through the API.\n")),
                ("files", ("setup.txt", PE_HEADER + bytes(100))),
            ],
        )
        assert ok.status_code == 200
        results = ok.json()["results"]
        assert [(r["file"], r["status"]) for r in results] == [("passwd.md", "indexed"), ("setup.txt", "failed")]
        assert "Windows executable" in results[1]["detail"]
        assert Path(results[0]["source"]).parent == (kb.settings.data_dir / "uploads").resolve()
    finally:
        app.state.service.close(stores=False)
