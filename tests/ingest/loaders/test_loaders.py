"""Document loaders: real files built in tmp_path (python-docx, fpdf2, pypdf), no mocks."""
from __future__ import annotations

import functools
import io
import logging
import os
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from ingest.loaders import (
    SUPPORTED_EXTENSIONS,
    DocumentLoader,
    LoadError,
    LoaderSettings,
    load_bytes,
    load_document,
    precheck_upload,
)
from ingest.types import sha256_hex
from tests.support.documents import (
    HTML,
    MARKDOWN,
    PE_HEADER,
    docx_bomb,
    make_pdf,
    valid_docx,
    valid_pdf,
)
from tests.support.paths import SAMPLES

# --- helpers -------------------------------------------------------------------------------------


def assert_reason(exc_info: pytest.ExceptionInfo[LoadError], *needles: str) -> None:
    reason = exc_info.value.reason
    assert reason and "\n" not in reason
    for needle in needles:
        assert needle.lower() in reason.lower(), reason


# --- formats ----------------------------------------------------------------------------------


def test_markdown_sections_follow_heading_stack(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    doc = load_document(path)
    assert doc.file_type == "markdown" and doc.title == "Guide" and doc.encoding == "utf-8"
    assert doc.source == str(path) and doc.doc_id == sha256_hex(path.read_bytes())
    by_path = {s.heading_path: s.text for s in doc.sections}
    assert list(by_path) == [(), ("Guide",), ("Guide", "Install"), ("Guide", "Install", "Details"), ("Guide", "Usage")]
    assert by_path[()] == "Preface before any heading."
    assert "front matter" not in doc.text
    assert by_path[("Guide",)] == "Some emphasis and a link and code."
    assert "1. Download\n2. Run the installer" in by_path[("Guide", "Install")]
    assert "| Key | Value |\n| --- | --- |\n| port | 8080 |" in by_path[("Guide", "Install")]
    assert by_path[("Guide", "Install", "Details")] == "make install"
    assert all(s.page is None for s in doc.sections)


def test_markdown_title_falls_back_to_stem() -> None:
    doc = load_bytes(b"## Only H2\n\ntext", "notes/readme.markdown")
    assert doc.title == "readme" and doc.sections[0].heading_path == ("Only H2",)


def test_html_sections_tables_and_dropped_chrome() -> None:
    doc = load_bytes(HTML.encode(), "team.html")
    assert doc.file_type == "html" and doc.title == "Team Page"
    by_path = {s.heading_path: s.text for s in doc.sections}
    assert by_path[("Team",)] == "We build things.\nSecond line."
    assert by_path[("Team", "Members")] == "| Name | Role |\n| --- | --- |\n| Ana | Lead |\n\n- one\n- two"
    assert by_path[("Team", "Contact")] == "Mail us."
    for dropped in ("secret", "color", "Home", "copyright", "enable js"):
        assert dropped not in doc.text


def test_html_title_from_first_h1_when_no_title_tag() -> None:
    doc = load_bytes(b"<html><body><h1>Heading Title</h1><p>x</p></body></html>", "p.htm")
    assert doc.title == "Heading Title"


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="gbk">',
        '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">',
        "",  # no declaration: detected
    ],
)
def test_chinese_gbk_html(meta: str) -> None:
    page = f"<html><head>{meta}<title>安全制度</title></head><body><h1>总则</h1><p>员工须在一小时内报告安全事件。</p><h2>密码</h2><p>密码长度不少于十四位。</p></body></html>"
    doc = load_bytes(page.encode("gbk"), "制度.html")
    assert doc.title == "安全制度"
    assert doc.encoding in ("gbk", "gb2312")
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("总则",), "员工须在一小时内报告安全事件。"),
        (("总则", "密码"), "密码长度不少于十四位。"),
    ]


def test_html_meta_charset_that_lies_falls_back() -> None:
    page = '<meta charset="utf-8"><p>中文内容</p>'.encode("gbk")
    assert load_bytes(page, "x.html").text == "中文内容"


def test_docx_keeps_body_order_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "ops.docx"
    path.write_bytes(valid_docx())
    doc = load_document(path)
    assert doc.file_type == "docx" and doc.title == "Ops Manual"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Ops Manual",), "Intro paragraph."),
        (("Ops Manual", "Deploy"), "Before the table.\n\n| Step | Owner |\n| --- | --- |\n| Build | CI |\n\nAfter the table."),
        (("Ops Manual", "Deploy", "Rollback"), "Revert the release tag."),
        (("Ops Manual", "Monitoring"), "Watch the dashboards."),
    ]


def test_docx_merged_cells_are_not_repeated() -> None:
    d = docx.Document()
    table = d.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Merged header"
    for c, value in enumerate(("a", "b", "c")):
        table.cell(1, c).text = value
    buf = io.BytesIO()
    d.save(buf)
    assert load_bytes(buf.getvalue(), "t.docx").text == "| Merged header |  |  |\n| --- | --- | --- |\n| a | b | c |"


def test_docx_tracked_changes_and_smart_tags() -> None:
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    d = docx.Document()
    p = d.add_paragraph("Kept ")
    p._p.append(parse_xml(f'<w:ins {w} w:id="1" w:author="a"><w:r><w:t>inserted </w:t></w:r></w:ins>'))
    p._p.append(parse_xml(f'<w:del {w} w:id="2" w:author="a"><w:r><w:delText>deleted </w:delText></w:r></w:del>'))
    p._p.append(parse_xml(f'<w:smartTag {w} w:uri="u" w:element="e"><w:r><w:t>text</w:t></w:r></w:smartTag>'))
    buf = io.BytesIO()
    d.save(buf)
    assert load_bytes(buf.getvalue(), "tracked.docx").text == "Kept inserted text"


def test_pdf_one_section_per_page_skipping_empty_pages(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(["Alpha page text.", None, "Gamma page text."], title="Quarterly Report"))
    doc = load_document(path)
    assert doc.file_type == "pdf" and doc.title == "Quarterly Report"
    assert [(s.page, s.text) for s in doc.sections] == [(1, "Alpha page text."), (3, "Gamma page text.")]
    assert doc.sections[1].location == "p. 3"


def test_pdf_without_text_layer() -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(make_pdf([None, None]), "scan.pdf")
    assert_reason(exc, "no extractable text", "no text layer", "scanned", "OCR")


def _encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_encrypted_with_empty_user_password_loads() -> None:
    doc = load_bytes(_encrypt(valid_pdf(), ""), "perm.pdf")
    assert [s.page for s in doc.sections] == [1, 2, 3] and "beta" in doc.sections[1].text


def test_pdf_with_password_is_rejected() -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(_encrypt(valid_pdf(), "hunter2"), "locked.pdf")
    assert_reason(exc, "password")


def _blank_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_page_cap_is_configurable_and_checked_before_parsing_pages() -> None:
    # Blank pages: without the cap this would be "no text layer"; the cap speaks first.
    with pytest.raises(LoadError) as exc:
        load_bytes(_blank_pdf(12), "long.pdf", LoaderSettings(max_pdf_pages=10))
    assert_reason(exc, "too many pages", "12", "limit is 10")
    with pytest.raises(LoadError) as exc:
        load_bytes(_blank_pdf(LoaderSettings().max_pdf_pages + 1), "huge.pdf")
    assert_reason(exc, "too many pages", str(LoaderSettings().max_pdf_pages + 1))
    doc = load_bytes(make_pdf(["one", "two", "three"]), "ok.pdf", LoaderSettings(max_pdf_pages=3))
    assert [s.page for s in doc.sections] == [1, 2, 3]


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8, 0.95])
def test_truncated_pdf_gives_pages_or_load_error(keep: float) -> None:
    data = valid_pdf()
    cut = data[: int(len(data) * keep)]
    try:
        doc = load_bytes(cut, "cut.pdf")
    except LoadError as exc:
        assert exc.reason.startswith(("not a valid PDF", "no extractable text"))
    else:
        assert doc.sections and all(s.page in (1, 2, 3) for s in doc.sections)


def test_corrupt_pdf_reason() -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(valid_pdf()[:300], "broken.pdf")
    assert_reason(exc, "not a valid PDF")


TEXT = "会议纪要\n第一行：预算 120 万元。\n\nSecond paragraph in English."


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (TEXT.encode("utf-8-sig"), "utf-8-sig"),
        (TEXT.encode("gbk"), "gbk"),
        (TEXT.replace("\n", "\r\n").encode("gbk"), "gbk"),
        (TEXT.encode("utf-16"), "utf-16"),
    ],
)
def test_text_encodings_decode_to_the_same_string(tmp_path: Path, encoded: bytes, encoding: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(encoded)
    doc = load_document(path)
    assert doc.file_type == "text" and doc.encoding == encoding
    assert doc.text == TEXT and len(doc.sections) == 1 and isinstance(doc.sections, tuple)
    assert doc.title == "notes"


def test_gb18030_only_characters() -> None:
    text = "生僻字：𠀀 与欧元符号 €"  # U+20000 is not in GBK
    doc = load_bytes(text.encode("gb18030"), "rare.txt")
    assert doc.text == text and doc.encoding == "gb18030"


def test_pdf_named_txt_loads_as_pdf(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest.loaders"):
        doc = load_bytes(valid_pdf(), "actually_a_pdf.txt")
    assert doc.file_type == "pdf" and doc.source == "actually_a_pdf.txt"
    assert any("content is a PDF" in r.getMessage() for r in caplog.records)


def test_docx_named_pdf_loads_as_docx(tmp_path: Path) -> None:
    path = tmp_path / "mislabelled.pdf"
    path.write_bytes(valid_docx())
    doc = load_document(path)
    assert doc.file_type == "docx" and "Watch the dashboards." in doc.text


def _zip_without_document() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("notes/readme.txt", "an archive, not an Office document")
    return buf.getvalue()


def _docx_with_broken_xml() -> bytes:
    src = zipfile.ZipFile(io.BytesIO(valid_docx()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, data[: len(data) // 2] if info.filename == "word/document.xml" else data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "needles"),
    [
        (b"", "empty.txt", ["empty file"]),
        (b"", "empty.pdf", ["empty file"]),
        (b" \n\t\r\n", "blank.md", ["no extractable text"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.txt", ["binary content", ".txt"]),
        (bytes(range(256)) * 4, "blob.txt", ["binary content in a .txt file"]),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08 text", "ctl.md", ["binary content"]),
        (_zip_without_document(), "sheet.docx", ["not an office document"]),
        (bytes(range(256))[::-1] * 8, "random.docx", ["not a valid .docx"]),
        (b"PK\x03\x04" + bytes(200), "truncated.docx", ["not a valid .docx"]),
        (_docx_with_broken_xml(), "broken.docx", ["not a valid .docx"]),
        (b"hello", "virus.exe", ["unsupported file type '.exe'"]),
        (b"hello", "Makefile", ["unsupported file type"]),
        (b"plain words, not a PDF", "fake.pdf", ["not a valid PDF"]),
        (b"%PDF-1.7\n" + bytes(range(256)) * 3, "garbage.pdf", ["not a valid PDF"]),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old.docx", ["legacy"]),
    ],
)
def test_bad_input_raises_load_error_with_reason(data: bytes, name: str, needles: list[str]) -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(data, name)
    assert_reason(exc, *needles)


def test_hostile_name_is_only_a_label(tmp_path: Path) -> None:
    doc = load_bytes(b"# Hi\n\ncontent", "../../etc/passwd.md")
    assert doc.source == "../../etc/passwd.md" and doc.title == "Hi" and doc.text == "content"
    # A name that is a real file on disk: its content must not be read.
    real = tmp_path / "real.md"
    real.write_text("on disk", encoding="utf-8")
    assert load_bytes(b"in memory", str(real)).text == "in memory"


def test_load_document_path_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as exc:
        load_document(tmp_path / "missing.md")
    assert_reason(exc, "not found")
    with pytest.raises(LoadError) as exc:
        load_document(tmp_path)
    assert_reason(exc, "directory")
    if hasattr(os, "mkfifo"):  # reading a FIFO would block forever
        fifo = tmp_path / "pipe.txt"
        os.mkfifo(fifo)
        with pytest.raises(LoadError) as exc:
            load_document(fifo)
        assert_reason(exc, "not a regular file")


def test_supported_extensions() -> None:
    assert frozenset(
        {".pdf", ".docx", ".xlsx", ".pptx", ".csv", ".eml", ".md", ".markdown", ".html", ".htm", ".txt"}
        | {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
    ) == SUPPORTED_EXTENSIONS


# --- upload safety: content allow-list, archives and bombs, size limits ------------------------------

def zip_with_lying_size() -> bytes:
    """A .docx-shaped ZIP whose document part declares 1 KB but inflates to 20 MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", bytes(20 * 1024 * 1024))
        info = zf.getinfo("word/document.xml")
    data = bytearray(buf.getvalue())
    real = info.file_size.to_bytes(4, "little")
    # The uncompressed size field of the member's local header (+22) and central directory entry (+24).
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = -1
        while (pos := data.find(sig, pos + 1)) != -1:
            if data[pos + offset : pos + offset + 4] == real:
                data[pos + offset : pos + offset + 4] = (1024).to_bytes(4, "little")
    return bytes(data)


def test_real_docx_passes_the_zip_checks() -> None:
    for data in (valid_docx(), (SAMPLES / "onboarding_en.docx").read_bytes()):
        assert load_bytes(data, "ok.docx", LoaderSettings()).file_type == "docx"


def test_docx_zip_bomb_is_refused_from_its_declared_sizes() -> None:
    bomb = docx_bomb(50)
    assert len(bomb) < 200_000  # 50 MB behind a small file
    with pytest.raises(LoadError) as exc:
        load_bytes(bomb, "report.docx")
    assert_reason(exc, "refused", "expands", "decompression bomb")
    with pytest.raises(LoadError) as exc:
        load_bytes(bomb, "report.docx", LoaderSettings(max_unzipped_mb=20, max_compression_ratio=10_000))
    assert_reason(exc, "unpacks to 50 MB", "limit 20 MB")
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("word/document.xml", "<x/>")
        for i in range(30):
            zf.writestr(f"word/media/{i}.bin", b"x")
    with pytest.raises(LoadError) as exc:
        load_bytes(many.getvalue(), "parts.docx", LoaderSettings(max_zip_members=20))
    assert_reason(exc, "31 parts", "limit 20")


def test_zip_member_that_lies_about_its_size_is_not_inflated() -> None:
    data = zip_with_lying_size()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.getinfo("word/document.xml").file_size == 1024  # the lie passes the size checks
    with pytest.raises(LoadError) as exc:
        load_bytes(data, "liar.docx")
    assert_reason(exc, "not a valid .docx")


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def _tar() -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("notes.md")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "needles"),
    [
        # Archives: refused by name whatever they hold (a real .docx zipped or renamed included)...
        (valid_docx(), "docs.zip", ["archives are not accepted", ".zip"]),
        (_gzip(b"# Notes"), "notes.md.gz", ["archives are not accepted", ".gz"]),
        (b"7z\xbc\xaf\x27\x1c" + bytes(32), "backup.7z", ["archives are not accepted"]),
        (b"Rar!\x1a\x07\x00" + bytes(32), "backup.rar", ["archives are not accepted"]),
        (_tar(), "bundle.tar", ["archives are not accepted"]),
        # ...and by content under a document's name.
        (_gzip(b"# Notes"), "notes.md", ["binary content", "gzip archive"]),
        (_tar(), "bundle.txt", ["binary content", "tar archive"]),
        (_zip_without_document(), "bundle.docx", ["not an office document", "archives are not accepted"]),
        # Executables renamed to a document type.
        (PE_HEADER, "setup.pdf", ["binary content in a .pdf file", "windows executable"]),
        (PE_HEADER, "setup.txt", ["binary content in a .txt file", "windows executable"]),
        (PE_HEADER, "setup.md", ["windows executable"]),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "tool.html", ["binary content", "ELF"]),
        (b"SQLite format 3\x00" + bytes(100), "db.txt", ["sqlite"]),
    ],
)
def test_archives_and_executables_are_refused_by_content_and_name(data: bytes, name: str, needles: list[str]) -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(data, name)
    assert_reason(exc, *needles)


@pytest.mark.parametrize(
    "text", ["MZ Holdings annual report: revenue grew.", "BZh is how the word starts here.", "GIF8 is not an image"]
)
def test_text_that_starts_like_a_magic_number_is_still_text(text: str) -> None:
    assert load_bytes(text.encode(), "report.txt").text == text


def test_plain_text_over_the_text_limit_is_refused_before_decoding() -> None:
    limits = LoaderSettings(max_text_mb=0.01)  # 10 KiB
    # NUL bytes would make decoding fail with "binary content": the size speaks first.
    with pytest.raises(LoadError) as exc:
        load_bytes(b"a\x00" * 8000, "big.txt", limits)
    assert_reason(exc, "the text file is 0.0 MB", "limit is 0.01 MB of text per document", "split")
    with pytest.raises(LoadError) as exc:
        load_bytes(b"# Big\n\n" + b"word " * 3000, "big.md", limits)
    assert_reason(exc, "limit is 0.01 MB")
    assert load_bytes(b"word " * 1000, "small.txt", limits).text.startswith("word")


def test_extracted_text_over_the_limit_is_refused_for_structured_formats() -> None:
    limits = LoaderSettings(max_text_mb=0.01)
    page = "<html><body>" + "<p>一段中文内容。</p>" * 600 + "</body></html>"  # 4,800 chars, 14,400 UTF-8 bytes
    with pytest.raises(LoadError) as exc:
        load_bytes(page.encode(), "long.html", limits)
    assert_reason(exc, "the text of this html document", "limit is 0.01 MB")
    assert load_bytes(page.encode(), "long.html").text.count("一段中文内容。") == 600


@pytest.mark.parametrize(
    ("name", "size", "head", "needles"),
    [
        ("empty.md", 0, b"", ["empty file"]),
        ("docs.zip", 10, b"PK\x03\x04", ["archives are not accepted"]),
        ("virus.exe", 10, b"MZ", ["unsupported file type '.exe'", ".pdf"]),
        ("noext", 10, b"hello", ["unsupported file type '(no extension)'"]),
        ("setup.pdf", 200, PE_HEADER, ["windows executable"]),
        ("huge.txt", 50 * 1024 * 1024, b"plain words", ["the text file is 50.0 MB", "limit is 10 MB"]),
        ("huge.md", 11 * 1024 * 1024, b"# Title", ["11.0 MB"]),
    ],
)
def test_precheck_refuses_from_name_size_and_head(name: str, size: int, head: bytes, needles: list[str]) -> None:
    with pytest.raises(LoadError) as exc:
        precheck_upload(name, size, head)
    assert_reason(exc, *needles)


@pytest.mark.parametrize(
    ("name", "size", "head"),
    [
        ("ok.md", 100, b"# Title"),
        ("big.pdf", 40 * 1024 * 1024, b"%PDF-1.7"),  # the text limit is judged after extraction
        ("scan.txt", 40 * 1024 * 1024, b"%PDF-1.4"),  # a PDF under a .txt name is a PDF
        ("big.html", 40 * 1024 * 1024, b"<html>"),  # markup: extracted text decides
    ],
)
def test_precheck_lets_through_what_only_parsing_can_judge(name: str, size: int, head: bytes) -> None:
    precheck_upload(name, size, head)


# --- DocumentLoader: the same documents, parsed in a child process with a time budget ----------------


@pytest.mark.parametrize("path", sorted(SAMPLES.iterdir()), ids=lambda p: p.name)
def test_isolated_loader_gives_the_same_document_as_in_process(path: Path) -> None:
    data = path.read_bytes()
    expected = load_bytes(data, str(path))
    assert DocumentLoader(LoaderSettings())(data, str(path)) == expected
    assert DocumentLoader(LoaderSettings(parse_timeout_s=0))(data, str(path)) == expected


def test_isolated_loader_reports_load_errors_and_forwards_logs(caplog: pytest.LogCaptureFixture) -> None:
    loader = DocumentLoader()
    with pytest.raises(LoadError) as exc:
        loader(make_pdf([None]), "scan.pdf")
    assert_reason(exc, "no text layer")
    with caplog.at_level(logging.WARNING, logger="ingest.loaders"):
        doc = loader(valid_pdf(), "named.txt")
    assert doc.file_type == "pdf" and doc.source == "named.txt" and doc.doc_id == sha256_hex(valid_pdf())
    assert any("content is a PDF" in r.getMessage() and r.name == "ingest.loaders.detect" for r in caplog.records)


@functools.cache
def long_pdf() -> bytes:
    """150 pages of text: far more than a 10 ms parse budget (~0.3 s here)."""
    return make_pdf([f"Page {i} about the quarterly figures. " * 15 for i in range(150)])


def test_parse_over_the_time_budget_is_abandoned_and_the_next_file_parses() -> None:
    with pytest.raises(LoadError) as exc:
        DocumentLoader(LoaderSettings(parse_timeout_s=0.01))(long_pdf(), "long.pdf")
    assert_reason(exc, "longer than the 0.01 s budget", "abandoned")
    # The killed parser is replaced: the next file loads.
    assert DocumentLoader()(b"# Next\n\nfine", "next.md").text == "fine"


def _address_space_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        pytest.skip("needs /proc to read the parser process's address space")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmSize:"))
    return int(line.split()[1]) // 1024  # kB


def test_parse_over_the_memory_cap_is_refused_and_the_next_file_parses() -> None:
    from ingest.loaders.isolation import _shared_worker

    # The cap is on the whole address space, so set it from the parser process's own size at rest
    # (70-100 MB depending on the interpreter and libraries), with HTML already imported.
    loader = DocumentLoader()
    assert loader(b"<html><body><p>warm</p></body></html>", "warm.html").text == "warm"
    worker = _shared_worker()._process
    assert worker is not None
    cap_mb = _address_space_mb(worker.pid) + 64
    # 400,000 elements (3.2 MB of HTML): ~1 KB of parse tree each, some 400 MB past the resting
    # size, several times the 64 MB headroom whatever the baseline.
    big = b"<html><body>" + b"<p>x</p>" * 400_000 + b"</body></html>"
    with pytest.raises(LoadError) as exc:
        DocumentLoader(LoaderSettings(parse_memory_mb=cap_mb))(big, "big.html")
    assert_reason(exc, "memory cap", f"{cap_mb} MB")
    assert loader(b"# Next\n\nfine", "next.md").text == "fine"
    assert _shared_worker()._process.pid != worker.pid  # the child that hit the cap was replaced


def test_a_parser_process_killed_between_files_is_replaced() -> None:
    from ingest.loaders.isolation import _shared_worker

    loader = DocumentLoader()
    assert loader(b"one", "a.txt").text == "one"
    process = _shared_worker()._process
    assert process is not None
    process.kill()
    process.wait()
    assert loader(b"two", "b.txt").text == "two"


# --- the demo corpus ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "file_type", "fact"),
    [
        ("employee_handbook_zh.md", "markdown", "18 天带薪年假"),
        ("product_faq_en.md", "markdown", "$12 per user per month"),
        ("security_policy_en.html", "html", "within 1 hour"),
        ("会议纪要_gbk.txt", "text", "2024 年 7 月 15 日上线"),
        ("onboarding_en.docx", "docx", "Laptop pickup and account setup | IT Help Desk, Floor 2"),
        ("release_notes_en.pdf", "pdf", "200 MB per file"),
    ],
)
def test_samples_load(name: str, file_type: str, fact: str) -> None:
    doc = load_document(SAMPLES / name)
    assert doc.file_type == file_type and doc.sections
    assert fact in doc.text


def test_sample_structure() -> None:
    handbook = load_document(SAMPLES / "employee_handbook_zh.md")
    assert ("Lumen Labs 员工手册", "年假", "年假天数") in {s.heading_path for s in handbook.sections}
    notes = load_document(SAMPLES / "会议纪要_gbk.txt")
    assert notes.encoding == "gbk" and "\r" not in notes.text
    pdf = load_document(SAMPLES / "release_notes_en.pdf")
    assert [s.page for s in pdf.sections] == [1, 2, 3]
    assert "200 MB" in pdf.sections[1].text
