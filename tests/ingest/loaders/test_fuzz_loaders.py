"""Fuzzing the loaders and the chunker (hypothesis, real parsers, the real e5 tokenizer).

Whatever the bytes and whatever the name: ``load_bytes`` returns a well-formed LoadedDocument or
raises LoadError with a one-line reason, never another exception; the isolated ``DocumentLoader``
agrees with it; and every loaded document chunks within the model's token limit, counted exactly as
the embedder will count it. The default profile stays well under a minute; the ``slow`` tests run
the same properties with many more examples (``pytest -m slow tests/ingest/loaders/test_fuzz_loaders.py``).
"""
from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.loaders import SUPPORTED_EXTENSIONS, DocumentLoader, LoadError, LoaderSettings, load_bytes
from ingest.settings import ChunkerSettings, EmbedderSettings
from ingest.types import LoadedDocument, sha256_hex
from tests.support.documents import (
    HTML,
    MARKDOWN,
    image_bytes,
    make_eml,
    make_pptx,
    make_xlsx,
    render_page,
    valid_docx,
    valid_pdf,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_FILE_TYPES = {"pdf", "docx", "xlsx", "csv", "pptx", "email", "image", "markdown", "html", "text"}
_EXTS = sorted(SUPPORTED_EXTENSIONS) + [".exe", ".zip", ".PDF", ".Md", ""]
_PREFIXES = [
    b"",
    b"%PDF-1.7\n",
    b"PK\x03\x04",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\xff\xfe\x00\x00",
    b"<html><meta charset=gbk>",
    b"<?xml version='1.0'?>",
    b"# T\n",
    b"---\ntitle: x\n---\n",
    b"MZ",
    b"\x1f\x8b",
]
_TEXT = "会议纪要：预算 120 万元。Second paragraph in English; 第三段。\n\n- item one\n- item two\n"
_VALID: dict[str, Callable[[], bytes]] = {
    "pdf": valid_pdf,
    "docx": valid_docx,
    "html": HTML.encode,
    "md": MARKDOWN.encode,
    "txt": lambda: _TEXT.encode("utf-8"),
    "gbk.txt": lambda: _TEXT.encode("gbk"),
    "utf16.txt": lambda: _TEXT.encode("utf-16"),
    "xlsx": functools.cache(lambda: make_xlsx([("产品", "单价"), ("路由器 R1", 4380), ("Switch S8", 1250.5)])),
    "gbk.csv": lambda: "城市,门店\n上海,徐家汇店\n杭州,西湖店\n".encode("gbk"),
    "pptx": functools.cache(lambda: make_pptx([("季度报告", "收入增长 12%. Revenue grew.", "Speak slowly.")])),
    "eml": functools.cache(lambda: make_eml("报价 Quote", "<p>价格见附件。</p>", [("quote.pdf", valid_pdf())])),
    "png": functools.cache(lambda: image_bytes(render_page(["OCR 文字 42"], size=28, width=360))),
}

# Names: hostile paths, controls, NUL, very long, Windows devices, odd Unicode; a loader only uses
# the name as a label and to pick a text format.
_names = st.one_of(
    st.builds(lambda stem, ext: stem + ext, st.text(max_size=40), st.sampled_from(_EXTS)),
    st.sampled_from(
        [
            "../../etc/passwd.md",
            "..\\..\\windows\\system32\\notes.txt",
            "/abs/path/report.pdf",
            "CON.md",
            "nul.txt",
            "a\x00b.md",
            "line\nbreak.html",
            "\u202etxt.exe",
            "x" * 5000 + ".md",
            "文档" * 200 + ".docx",
            ".md",
            "",
        ]
    ),
)


def check_load(data: bytes, name: str, limits: LoaderSettings | None = None) -> LoadedDocument | None:
    """The property: a well-formed document or a LoadError with a one-line reason, nothing else."""
    try:
        doc = load_bytes(data, name, limits)
    except LoadError as exc:
        assert isinstance(exc.reason, str) and exc.reason and "\n" not in exc.reason and len(exc.reason) <= 300
        return None
    assert isinstance(doc, LoadedDocument)
    assert doc.source == name and doc.doc_id == sha256_hex(data) and doc.file_type in _FILE_TYPES
    assert doc.sections and all(s.text.strip() for s in doc.sections)
    assert all(s.page is None or s.page >= 1 for s in doc.sections)
    limit = (limits or LoaderSettings()).max_text_bytes
    assert sum(len(s.text.encode("utf-8")) for s in doc.sections) <= limit  # lone surrogates would raise here
    return doc


def _mutate(source: bytes, cut: float, flips: list[tuple[float, int]], splice: tuple[float, bytes]) -> bytes:
    data = bytearray(source[: max(1, int(len(source) * cut))] if cut < 0.98 else source)
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    where, insert = splice
    at = int(where * len(data))
    data[at:at] = insert
    return bytes(data)


def _docx_with_body(body_xml: str) -> bytes:
    """A real .docx whose document body is replaced by ``body_xml`` (structure-aware fuzzing: byte
    flips inside a ZIP mostly just fail the CRC check)."""
    src = zipfile.ZipFile(io.BytesIO(valid_docx()))
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{w}"><w:body>{body_xml}</w:body></w:document>'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = document.encode("utf-8", "surrogatepass") if info.filename == "word/document.xml" else src.read(info)
            dst.writestr(info.filename, data)
    return buf.getvalue()


# Markup fragments recombined at random: unbalanced tags, nested tables, headings in odd places,
# entities for NUL and surrogates, CJK text, front matter, code fences.
_HTML_PIECES = [
    "<h1>", "</h1>", "<h2>标题</h2>", "<p>", "</p>", "<table>", "<tr>", "<td>", "</td>", "</tr>", "</table>",
    "<ul><li>", "</li></ul>", "<script>var x=1;</script>", "<br>", "<div>", "</div>", "&amp;", "&#0;",
    "&#xD800;", "&nbsp;", "<!-- c -->", "<![CDATA[x]]>", "<meta charset='gbk'>", "文本。", "Text. ", "\n",
    "<caption>cap</caption>", "<pre>  code  </pre>", "<h7>", "<svg><text>t</text></svg>", "\x00", "\x0c",
]
_MD_PIECES = [
    "# ", "## ", "###### ", "####### ", "\n", "\n\n", "- ", "1. ", "> ", "```", "~~~", "| a | b |\n| --- | --- |\n",
    "| 1 | 2 |\n", "*", "**", "_", "`", "[link](http://x)", "![img](y)", "<div>", "</div>", "<!-- -->", "---\n",
    "+++\n", "title: t\n", "中文句子。", "English sentence. ", "\\", "&#0;", "&#xD800;", "    indented\n", "\t",
]
_DOCX_PIECES = [
    "<w:p>", "</w:p>", "<w:r>", "</w:r>", "<w:t>", "</w:t>", "文字", "text ", "<w:tab/>", "<w:br/>",
    "<w:p><w:pPr><w:pStyle w:val='Heading1'/></w:pPr><w:r><w:t>H</w:t></w:r></w:p>",
    "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>c</w:t></w:r></w:p></w:tc></w:tr></w:tbl>",
    "<w:tbl>", "<w:tr>", "<w:tc>", "</w:tc>", "</w:tr>", "</w:tbl>", "<w:sdt><w:sdtContent>", "</w:sdtContent></w:sdt>",
    "<w:ins>", "</w:ins>", "<w:del><w:r><w:delText>gone</w:delText></w:r></w:del>", "&#x1;", "&amp;",
]


def _markup(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=12)), max_size=60).map("".join)


# --- the properties (each run twice: a fast default profile and a long ``slow`` one) --------------------


def _random_bytes(prefix: bytes, body: bytes, name: str) -> None:
    check_load(prefix + body, name)


_random_bytes_args: dict[str, Any] = dict(
    prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=2048), name=_names
)


def _mutated_files(fmt: str, cut: float, flips: list[tuple[float, int]], splice: tuple[float, bytes], ext: str) -> None:
    data = _mutate(_VALID[fmt](), cut, flips, splice)
    check_load(data, "mutated" + (ext or "." + fmt.rsplit(".", 1)[-1]))


_mutated_files_args: dict[str, Any] = dict(
    fmt=st.sampled_from(sorted(_VALID)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
    splice=st.tuples(st.floats(0.0, 1.0), st.binary(max_size=64)),
    ext=st.sampled_from(["", ""] + _EXTS),  # mostly the format's own extension
)


def _structured_markup(html: str, md: str, docx_body: str, encoding: str) -> None:
    for text, name in ((html, "page.html"), (md, "notes.md")):
        try:
            data = text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")
        except UnicodeError:
            continue
        check_load(data, name)
    check_load(_docx_with_body(docx_body), "fuzz.docx")


_structured_args: dict[str, Any] = dict(
    html=_markup(_HTML_PIECES),
    md=_markup(_MD_PIECES),
    docx_body=_markup(_DOCX_PIECES),
    encoding=st.sampled_from(["utf-8", "gbk", "utf-16"]),
)

test_fuzz_random_bytes_under_any_name = FAST(given(**_random_bytes_args)(_random_bytes))
test_fuzz_mutated_valid_files = FAST(given(**_mutated_files_args)(_mutated_files))
test_fuzz_structured_markup = FAST(given(**_structured_args)(_structured_markup))
test_fuzz_random_bytes_long = pytest.mark.slow(SLOW(given(**_random_bytes_args)(_random_bytes)))
test_fuzz_mutated_valid_files_long = pytest.mark.slow(SLOW(given(**_mutated_files_args)(_mutated_files)))
test_fuzz_structured_markup_long = pytest.mark.slow(SLOW(given(**_structured_args)(_structured_markup)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(_VALID)), cut=st.floats(0.0, 1.0), splice=st.tuples(st.floats(0, 1), st.binary(max_size=32)))
# Found by this test: PIL's reason held an object's memory address, different in each process.
@example(fmt="png", cut=0.0, splice=(0.0, b"\xff\xd8\xff"))
def test_fuzz_isolated_loader_agrees_with_in_process(fmt: str, cut: float, splice: tuple[float, bytes]) -> None:
    """The child process and the JSON wire give the same document, or the same reason."""
    data = _mutate(_VALID[fmt](), cut, [], splice)
    name = "f." + fmt.rsplit(".", 1)[-1]
    try:
        expected: LoadedDocument | str = load_bytes(data, name)
    except LoadError as exc:
        expected = exc.reason
    try:
        got: LoadedDocument | str = DocumentLoader(LoaderSettings())(data, name)
    except LoadError as exc:
        got = exc.reason
    assert got == expected


# --- loaders -> chunker: the chunk-size guarantee on whatever the loaders produce ------------------------


@pytest.fixture(scope="module")
def small_limit_embedder(e5_model_dir: Path) -> Embedder:
    """The real e5 tokenizer with a 64-token model limit: short inputs already stress the limit."""
    return Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), max_tokens=64))


def assert_chunks_fit(doc: LoadedDocument, embedder: Embedder, target: int, overlap: int) -> None:
    chunker = Chunker(ChunkerSettings(target_tokens=target, overlap_tokens=overlap), embedder)
    chunks = chunker.chunk(doc)
    counts = embedder.count_tokens([c.indexed_text for c in chunks])  # heading path and text, as embedded
    assert all(n <= embedder.max_tokens for n in counts), (max(counts), embedder.max_tokens)
    assert [c.token_count for c in chunks] == counts
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.text.strip() and c.doc_id == doc.doc_id and c.source == doc.source for c in chunks)
    pages = {s.page for s in doc.sections}
    assert all(c.page in pages for c in chunks)
    # Nothing is lost: every non-space character of the document is in some chunk.
    covered = set("".join(c.text for c in chunks))
    assert {ch for ch in doc.text if not ch.isspace()} <= covered


_chunk_args: dict[str, Any] = dict(
    html=_markup(_HTML_PIECES + ["长句子没有标点" * 20, "word" * 80, "a " * 300]),
    md=_markup(_MD_PIECES + ["长句子没有标点" * 20, "supercalifragilistic" * 30]),
    fmt=st.sampled_from(sorted(_VALID)),
    cut=st.floats(0.3, 1.0),
    target=st.integers(10, 300),
    overlap=st.integers(0, 40),
)


def _loaded_then_chunked(embedder: Embedder, html: str, md: str, fmt: str, cut: float, target: int, overlap: int) -> None:
    inputs = [
        (html.encode("utf-8", "surrogatepass"), "page.html"),
        (md.encode("utf-8", "surrogatepass"), "notes.md"),
        (_mutate(_VALID[fmt](), cut, [], (0.0, b"")), "cut." + fmt.rsplit(".", 1)[-1]),
    ]
    for data, name in inputs:
        doc = check_load(data, name)
        if doc is not None:
            assert_chunks_fit(doc, embedder, target, overlap)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_chunk_args)
def test_fuzz_loaded_documents_chunk_within_the_model_limit(
    e5_embedder: Embedder, html: str, md: str, fmt: str, cut: float, target: int, overlap: int
) -> None:
    """The default model limit (512 tokens) with the real e5 tokenizer."""
    _loaded_then_chunked(e5_embedder, html, md, fmt, cut, target, overlap)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_chunk_args)
def test_fuzz_loaded_documents_chunk_within_a_small_model_limit(
    small_limit_embedder: Embedder, html: str, md: str, fmt: str, cut: float, target: int, overlap: int
) -> None:
    """A 64-token limit: most sentences and table rows are over it and must be cut."""
    _loaded_then_chunked(small_limit_embedder, html, md, fmt, cut, target, overlap)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**_chunk_args)
def test_fuzz_loaded_documents_chunk_within_the_limit_long(
    small_limit_embedder: Embedder, html: str, md: str, fmt: str, cut: float, target: int, overlap: int
) -> None:
    _loaded_then_chunked(small_limit_embedder, html, md, fmt, cut, target, overlap)
