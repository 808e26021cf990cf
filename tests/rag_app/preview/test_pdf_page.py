"""A cited PDF page renders as a PNG with the cited passage highlighted where it sits, over real PDFs
made with fpdf2 (the passage placed at known coordinates) and the sample release notes."""
from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image, ImageStat
from pypdf import PdfReader

from rag_app.preview import PagePreview, PreviewError, render_pdf_passage
from tests.support.documents import CJK_FONT
from tests.support.paths import SAMPLES

SCALE = 1.5
A4 = (595.28, 841.89)  # points
PASSAGE_XY = (60.0, 400.0)  # where each page's passage paragraph starts (points, top-left origin)
LINE = 16.0  # points per line of the passage paragraph
FILLER_Y = 100.0  # the filler paragraph above it, never highlighted

PASSAGE_LINES = {
    1: ["The alpha service keeps a nightly snapshot", "of every knowledge base for thirty days so", "a deleted document can be restored quickly."],
    2: ["Beta uploads are limited to two hundred", "megabytes per file, and larger archives must", "be split before they are indexed by the worker."],
    3: ["Gamma reports list every failed ingestion", "with its reason, and the administrator can", "retry the failed files from the same screen."],
}
FILLER = "Filler paragraph on page {n}: routine notes about the release schedule and nothing else."
CJK_LINES = ["知识库每天夜间自动备份一次，", "备份保留三十天，删除的文档可以", "在管理页面中快速恢复。"]


def _write_pdf(path: Path, pages: dict[int, list[str]], cjk_page: list[str] | None = None) -> Path:
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    if cjk_page is not None:
        pdf.add_font("wqy", fname=CJK_FONT)
    for n, lines in sorted(pages.items()):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.set_xy(60, FILLER_Y)
        pdf.multi_cell(470, LINE, FILLER.format(n=n))
        pdf.set_xy(*PASSAGE_XY)
        pdf.multi_cell(470, LINE, "\n".join(lines))  # one PDF text line per entry
    if cjk_page is not None:
        pdf.add_page()
        pdf.set_font("wqy", size=12)
        pdf.set_xy(60, FILLER_Y)
        pdf.multi_cell(470, LINE, "这一段是填充文字，与备份无关。")
        pdf.set_xy(*PASSAGE_XY)
        pdf.multi_cell(470, LINE, "\n".join(cjk_page))
    path.write_bytes(bytes(pdf.output()))
    return path


@pytest.fixture
def english_pdf(tmp_path: Path) -> Path:
    return _write_pdf(tmp_path / "notes.pdf", PASSAGE_LINES)


@pytest.fixture
def mixed_pdf(tmp_path: Path) -> Path:
    return _write_pdf(tmp_path / "mixed.pdf", {1: PASSAGE_LINES[1], 2: PASSAGE_LINES[2]}, cjk_page=CJK_LINES)


def _image(preview: PagePreview) -> Image.Image:
    image = Image.open(io.BytesIO(preview.png))
    assert image.format == "PNG"
    assert image.size == (preview.width, preview.height)
    return image.convert("RGB")


def _mean(image: Image.Image, box_pt: tuple[float, float, float, float], scale: float = SCALE) -> list[float]:
    return ImageStat.Stat(image.crop(tuple(round(v * scale) for v in box_pt))).mean


def _passage_box(lines: int, width: float = 250.0) -> tuple[float, float, float, float]:
    """The left part of the passage paragraph (every line of it is at least this wide)."""
    x, y = PASSAGE_XY
    return (x, y + 2, x + width, y + lines * LINE - 2)


def _assert_yellow_over_passage(plain: Image.Image, marked: Image.Image, lines: int, width: float = 250.0) -> None:
    before, after = _mean(plain, _passage_box(lines, width)), _mean(marked, _passage_box(lines, width))
    assert after[2] < before[2] - 40, (before, after)  # blue drops: yellow tint
    assert after[0] > before[0] - 15 and after[1] > before[1] - 30, (before, after)  # red and green stay
    filler = (60, FILLER_Y, 400, FILLER_Y + LINE)
    assert _mean(marked, filler) == _mean(plain, filler)  # the rest of the page is untouched


def test_the_passage_is_highlighted_line_by_line_on_its_page(english_pdf: Path) -> None:
    passage = " ".join(PASSAGE_LINES[2])
    marked = render_pdf_passage(english_pdf, 2, passage)
    plain = render_pdf_passage(english_pdf, 2, "")
    assert (marked.page, marked.highlighted, plain.highlighted) == (2, 3, 0)  # one rectangle per line
    image = _image(marked)
    assert abs(image.width - A4[0] * SCALE) <= 1 and abs(image.height - A4[1] * SCALE) <= 1
    assert image.width / image.height == pytest.approx(A4[0] / A4[1], rel=0.005)
    _assert_yellow_over_passage(_image(plain), image, lines=3)


def test_a_passage_from_another_page_highlights_nothing_but_the_page_still_renders(english_pdf: Path) -> None:
    preview = render_pdf_passage(english_pdf, 1, " ".join(PASSAGE_LINES[3]))
    assert preview.highlighted == 0
    assert _image(preview).tobytes() == _image(render_pdf_passage(english_pdf, 1, "")).tobytes()


def test_other_line_breaks_spaces_and_hyphenation_still_match(english_pdf: Path) -> None:
    # Re-wrapped, extra and missing whitespace, a word hyphenated across a line the PDF does not break,
    # starting and ending mid-line.
    passage = "snapshot\n of  every knowledge\tbase for thir-\nty days so a deleted docu-\nment can be"
    preview = render_pdf_passage(english_pdf, 1, passage)
    assert preview.highlighted == 3
    plain, marked = _image(render_pdf_passage(english_pdf, 1, "")), _image(preview)
    x, y = PASSAGE_XY
    for box in [(x, y + LINE + 2, x + 200, y + 2 * LINE - 2), (x, y + 2 * LINE + 2, x + 100, y + 3 * LINE - 2)]:
        assert _mean(marked, box)[2] < _mean(plain, box)[2] - 40  # lines 2 and 3 from their start
    first_words = (x, y + 2, x + 60, y + LINE - 2)  # "The alpha": before the passage starts
    assert _mean(marked, first_words) == _mean(plain, first_words)
    rest_of_line_3 = (x + 160, y + 2 * LINE + 2, x + 200, y + 3 * LINE - 2)  # "restored": after it ends
    assert _mean(marked, rest_of_line_3) == _mean(plain, rest_of_line_3)


def test_a_partly_matching_passage_highlights_the_part_on_the_page(english_pdf: Path) -> None:
    # A chunk that runs on past the page, with a changed word: the long matching blocks still show.
    passage = " ".join(PASSAGE_LINES[2]).replace("worker", "indexer") + " Text that is on no page at all, appended."
    preview = render_pdf_passage(english_pdf, 2, passage)
    assert preview.highlighted == 3
    _assert_yellow_over_passage(_image(render_pdf_passage(english_pdf, 2, "")), _image(preview), lines=3)


def test_a_chinese_passage_matches_without_the_spaces_and_breaks_of_the_chunk(mixed_pdf: Path) -> None:
    passage = "知识库每天夜间自动备份一次， 备份保留 三十天，\n删除的文档可以在管理页面中快速恢复。"
    preview = render_pdf_passage(mixed_pdf, 3, passage)
    assert preview.highlighted == 3
    plain = _image(render_pdf_passage(mixed_pdf, 3, ""))
    _assert_yellow_over_passage(plain, _image(preview), lines=3, width=120)
    assert render_pdf_passage(mixed_pdf, 1, passage).highlighted == 0


def test_text_drawn_twice_over_itself_matches_once(tmp_path: Path) -> None:
    # Fake bold: the same line printed twice at one place; the chunk has it once.
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for _ in range(2):
        pdf.text(60, 300, "Restart the indexer after changing the embedding model.")
    path = tmp_path / "bold.pdf"
    path.write_bytes(bytes(pdf.output()))
    assert render_pdf_passage(path, 1, "Restart the indexer after changing the embedding model.").highlighted == 1


def test_a_large_page_is_rendered_smaller_rather_than_refused(english_pdf: Path) -> None:
    preview = render_pdf_passage(english_pdf, 2, " ".join(PASSAGE_LINES[2]), scale=20.0, max_pixels=200_000)
    image = _image(preview)
    assert image.width * image.height <= 200_000
    assert image.width * image.height > 150_000
    assert image.width / image.height == pytest.approx(A4[0] / A4[1], rel=0.01)
    assert preview.highlighted == 3


@pytest.mark.parametrize("page", [0, -1, 4, 99])
def test_a_page_out_of_range_is_refused(english_pdf: Path, page: int) -> None:
    with pytest.raises(PreviewError, match=r"page .* out of range \(the PDF has 3 pages\)"):
        render_pdf_passage(english_pdf, page, "anything")


@pytest.mark.parametrize(
    "content",
    [random.Random(1).randbytes(4096), b"%PDF-1.7\n" + random.Random(2).randbytes(2048), b"not a pdf, just text", b""],
    ids=["random", "pdf-header-then-garbage", "text", "empty"],
)
def test_a_corrupt_or_non_pdf_file_is_refused_with_a_one_line_message(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(PreviewError) as caught:
        render_pdf_passage(path, 1, "anything")
    message = str(caught.value)
    assert message.startswith("broken.pdf: ") and "\n" not in message and "Traceback" not in message
    assert isinstance(caught.value, ValueError)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreviewError, match="no such file"):
        render_pdf_passage(tmp_path / "gone.pdf", 1, "anything")


def test_a_sentence_of_the_sample_release_notes_is_highlighted_on_page_1() -> None:
    path = SAMPLES / "release_notes_en.pdf"
    text = PdfReader(path).pages[0].extract_text()
    sentence = next(s for s in text.replace("\n", " ").split(". ") if "re-indexing" in s)
    preview = render_pdf_passage(path, 1, sentence)
    assert preview.highlighted >= 1
    image = _image(preview)
    width, height = PdfReader(path).pages[0].mediabox.width, PdfReader(path).pages[0].mediabox.height
    assert image.width / image.height == pytest.approx(float(width) / float(height), rel=0.005)
    assert render_pdf_passage(path, 3, sentence).highlighted == 0


def test_a_long_passage_missing_from_a_full_page_highlights_nothing(tmp_path: Path) -> None:
    # The fuzzy fallback on a dense page (its speed is not a unit test's business: no timing here).
    words = [f"word{i} lorem ipsum dolor sit amet" for i in range(160)]
    path = _write_pdf(tmp_path / "dense.pdf", {1: [" ".join(words[i : i + 8]) for i in range(0, 160, 8)]})
    passage = " ".join(f"other{i} consectetur adipiscing elit sed do" for i in range(60))
    assert render_pdf_passage(path, 1, passage).highlighted == 0
