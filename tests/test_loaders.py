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
from fpdf import FPDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from ingest.loaders import SUPPORTED_EXTENSIONS, LoadError, load_bytes, load_document
from ingest.types import LoadedDocument, sha256_hex

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


# --- builders ------------------------------------------------------------------------------------


def make_pdf(pages: list[str | None], title: str | None = None) -> bytes:
    """One page per entry; None makes a page with a drawing but no text (like a scan)."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text is None:
            pdf.rect(20, 20, 100, 60, style="F")
            continue
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def make_docx() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Ops Manual"
    d.add_heading("Ops Manual", level=0)
    d.add_paragraph("Intro paragraph.")
    d.add_heading("Deploy", level=1)
    d.add_paragraph("Before the table.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Step", "Owner"), ("Build", "CI")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("After the table.")
    d.add_heading("Rollback", level=2)
    d.add_paragraph("Revert the release tag.")
    d.add_heading("Monitoring", level=1)
    d.add_paragraph("Watch the dashboards.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@functools.cache
def valid_pdf() -> bytes:
    return make_pdf(["First page about alpha.", "Second page about beta.", "Third page about gamma."])


@functools.cache
def valid_docx() -> bytes:
    return make_docx()


def assert_reason(exc_info: pytest.ExceptionInfo[LoadError], *needles: str) -> None:
    reason = exc_info.value.reason
    assert reason and "\n" not in reason
    for needle in needles:
        assert needle.lower() in reason.lower(), reason


# --- formats ----------------------------------------------------------------------------------


MARKDOWN = """\
---
title: ignored front matter
tags: [a, b]
---

Preface before any heading.

# Guide

Some *emphasis* and a [link](https://example.com) and `code`.

## Install

1. Download
2. Run the **installer**

| Key | Value |
| --- | --- |
| port | 8080 |

### Details

```bash
make install
```

## Usage

Use it.
"""


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
    assert "Key | Value\nport | 8080" in by_path[("Guide", "Install")]
    assert by_path[("Guide", "Install", "Details")] == "make install"
    assert all(s.page is None for s in doc.sections)


def test_markdown_title_falls_back_to_stem() -> None:
    doc = load_bytes(b"## Only H2\n\ntext", "notes/readme.markdown")
    assert doc.title == "readme" and doc.sections[0].heading_path == ("Only H2",)


HTML = """\
<!doctype html>
<html><head><title>Team Page</title><style>.x{color:red}</style>
<script>var secret = 1;</script></head>
<body>
<nav>Home | About</nav>
<h1>Team</h1><p>We build   things.<br>Second line.</p>
<h2>Members</h2>
<table><tr><th>Name</th><th>Role</th></tr><tr><td>Ana</td><td>Lead</td></tr></table>
<ul><li>one</li><li>two</li></ul>
<h2>Contact</h2><p>Mail us.</p><noscript>enable js</noscript>
<footer>copyright</footer>
</body></html>
"""


def test_html_sections_tables_and_dropped_chrome() -> None:
    doc = load_bytes(HTML.encode(), "team.html")
    assert doc.file_type == "html" and doc.title == "Team Page"
    by_path = {s.heading_path: s.text for s in doc.sections}
    assert by_path[("Team",)] == "We build things.\nSecond line."
    assert by_path[("Team", "Members")] == "Name | Role\nAna | Lead\n\n- one\n- two"
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
        (("Ops Manual", "Deploy"), "Before the table.\n\nStep | Owner\nBuild | CI\n\nAfter the table."),
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
    assert load_bytes(buf.getvalue(), "t.docx").text == "Merged header\na | b | c"


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
    assert_reason(exc, "no extractable text", "scanned")


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


def test_pdf_page_cap() -> None:
    writer = PdfWriter()
    for _ in range(5001):
        writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(LoadError) as exc:
        load_bytes(out.getvalue(), "huge.pdf")
    assert_reason(exc, "too many pages", "5001")


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
        zf.writestr("xl/workbook.xml", "<workbook/>")
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
        (_zip_without_document(), "sheet.docx", ["not a word document"]),
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
    assert SUPPORTED_EXTENSIONS == frozenset({".pdf", ".docx", ".md", ".markdown", ".html", ".htm", ".txt"})


# --- fuzzing: LoadedDocument or LoadError, never anything else -------------------------------------

_EXTS = sorted(SUPPORTED_EXTENSIONS) + [".exe", ""]
_PREFIXES = [b"", b"%PDF-1.7\n", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe", b"<html><meta charset=gbk>", b"# T\n"]


def _check(data: bytes, name: str) -> None:
    try:
        doc = load_bytes(data, name)
    except LoadError as exc:
        assert isinstance(exc.reason, str) and exc.reason and "\n" not in exc.reason
    else:
        assert isinstance(doc, LoadedDocument) and doc.sections and doc.doc_id == sha256_hex(data)
        assert all(s.text.strip() for s in doc.sections)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=2048), ext=st.sampled_from(_EXTS))
def test_fuzz_random_bytes(prefix: bytes, body: bytes, ext: str) -> None:
    _check(prefix + body, f"upload{ext}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["pdf", "docx", "html", "md"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)
def test_fuzz_mutated_valid_files(fmt: str, cut: float, flips: list[tuple[float, int]]) -> None:
    source = {"pdf": valid_pdf(), "docx": valid_docx(), "html": HTML.encode(), "md": MARKDOWN.encode()}[fmt]
    data = bytearray(source[: max(1, int(len(source) * cut))] if cut < 0.98 else source)
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    _check(bytes(data), f"mutated.{fmt}")


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
