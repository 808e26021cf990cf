"""PPTX loader: decks built in memory with python-pptx, no binary fixtures."""
from __future__ import annotations

import io

import pptx
import pytest
from pptx.slide import Slide
from pptx.util import Inches

from ingest.loaders.detect import LoadError
from ingest.loaders.pptx import load_pptx
from ingest.types import sha256_hex
from tests.support.documents import valid_docx

TITLE_SLIDE, TITLE_AND_CONTENT, TITLE_ONLY, BLANK = 0, 1, 5, 6


def _save(deck: pptx.presentation.Presentation) -> bytes:
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def _text_box(slide: Slide, text: str, left: float, top: float) -> None:
    box = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(3), Inches(0.5))
    box.text_frame.text = text


def make_deck(core_title: str = "") -> bytes:
    deck = pptx.Presentation()
    if core_title:
        deck.core_properties.title = core_title
    first = deck.slides.add_slide(deck.slide_layouts[TITLE_SLIDE])
    first.shapes.title.text = "季度报告 Quarterly Report"
    first.placeholders[1].text = "2024 年第三季度"

    second = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    second.shapes.title.text = "价格 Prices"
    body = second.placeholders[1].text_frame
    body.text = "Prices are per kilogram"
    body.add_paragraph().text = "价格含税"
    rows = [("产品", "价格", "库存"), ("苹果 Apple", "5 元", "120"), ("香蕉 Banana", "3 元", "80")]
    table = second.shapes.add_table(3, 3, Inches(1), Inches(5), Inches(6), Inches(1.5)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value

    third = deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY])
    third.shapes.title.text = "Next steps"
    _text_box(third, "Ship the 报价 tool", 1, 2)
    third.notes_slide.notes_text_frame.text = "Remember the deadline.\n周五之前完成"
    return _save(deck)


def test_one_section_per_slide_with_pages_and_titles() -> None:
    data = make_deck()
    doc = load_pptx(data, "decks/q3.pptx")
    assert doc.file_type == "pptx" and doc.source == "decks/q3.pptx" and doc.doc_id == sha256_hex(data)
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert [s.heading_path for s in doc.sections] == [("季度报告 Quarterly Report",), ("价格 Prices",), ("Next steps",)]
    assert doc.sections[0].text == "2024 年第三季度"
    assert doc.title == "季度报告 Quarterly Report"


def test_table_becomes_markdown_after_bullets() -> None:
    text = load_pptx(make_deck(), "q3.pptx").sections[1].text
    assert text.startswith("Prices are per kilogram\n价格含税\n\n")
    lines = text.splitlines()
    assert "| 产品 | 价格 | 库存 |" in lines
    header = lines.index("| 产品 | 价格 | 库存 |")
    assert lines[header + 1] == "| --- | --- | --- |"
    assert lines[header + 2 :] == ["| 苹果 Apple | 5 元 | 120 |", "| 香蕉 Banana | 3 元 | 80 |"]
    assert "价格 Prices" not in text


def test_speaker_notes_end_the_slide_text() -> None:
    text = load_pptx(make_deck(), "q3.pptx").sections[2].text
    assert text == "Ship the 报价 tool\n\nSpeaker notes: Remember the deadline.\n周五之前完成"
    assert "Next steps" not in text


def test_core_title_wins_over_first_slide_title() -> None:
    assert load_pptx(make_deck(core_title="Q3 Review"), "q3.pptx").title == "Q3 Review"


def test_title_falls_back_to_file_stem() -> None:
    deck = pptx.Presentation()
    _text_box(deck.slides.add_slide(deck.slide_layouts[BLANK]), "Only a text box", 1, 1)
    doc = load_pptx(_save(deck), "uploads/untitled deck.pptx")
    assert doc.title == "untitled deck"
    assert doc.sections[0].heading_path == () and doc.sections[0].text == "Only a text box"


def test_reading_order_by_position_with_groups() -> None:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[BLANK])
    _text_box(slide, "bottom", 1, 5)
    _text_box(slide, "top right", 5, 1)
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(3), Inches(2), Inches(0.5)).text_frame.text = "grouped second"
    group.shapes.add_textbox(Inches(1), Inches(2.5), Inches(2), Inches(0.5)).text_frame.text = "grouped first"
    _text_box(slide, "top left", 1, 1)
    text = load_pptx(_save(deck), "order.pptx").sections[0].text
    assert text.split("\n\n") == ["top left", "top right", "grouped first", "grouped second", "bottom"]


def test_slides_without_text_are_skipped() -> None:
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[BLANK])
    _text_box(deck.slides.add_slide(deck.slide_layouts[BLANK]), "second slide", 1, 1)
    doc = load_pptx(_save(deck), "gaps.pptx")
    assert [(s.page, s.text) for s in doc.sections] == [(2, "second slide")]


def test_deck_without_text_is_load_error() -> None:
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[BLANK])
    with pytest.raises(LoadError, match="no extractable text"):
        load_pptx(_save(deck), "empty.pptx")


def test_truncated_pptx_is_load_error() -> None:
    data = make_deck()
    with pytest.raises(LoadError, match=r"^not a valid \.pptx \(") as exc_info:
        load_pptx(data[: len(data) // 2], "cut.pptx")
    assert "\n" not in exc_info.value.reason


def test_docx_renamed_pptx_is_load_error() -> None:
    with pytest.raises(LoadError, match=r"^not a valid \.pptx \("):
        load_pptx(valid_docx(), "report.pptx")


def test_garbage_is_load_error() -> None:
    with pytest.raises(LoadError, match=r"^not a valid \.pptx"):
        load_pptx(b"\x00\x01binary", "x.pptx")
