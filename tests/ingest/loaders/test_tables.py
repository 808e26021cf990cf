"""Tables in PDFs and Word files reach the chunks as Markdown tables: a figure stays on the row of its
label, rows are never cut, and a chunk that continues a table starts with its header."""
from __future__ import annotations

import io

import docx
from fpdf import FPDF, FontFace

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.loaders import load_bytes
from ingest.loaders.tables import markdown_table, tables_as_rows
from ingest.settings import ChunkerSettings
from tests.support.documents import CJK_FONT

HEADER = ("产品", "单价 (元)", "库存")
ROWS = [(f"路由器 R{i}", str(4000 + i * 15), str(i * 3)) for i in range(40)]
MARKDOWN_HEADER = "| 产品 | 单价 (元) | 库存 |\n| --- | --- | --- |"


def _pdf_with_table() -> bytes:
    pdf = FPDF()
    pdf.add_font("wqy", fname=CJK_FONT)
    pdf.add_page()
    pdf.set_font("wqy", size=10)
    pdf.multi_cell(0, 6, "报价说明：以下价格含税，有效期至 2026 年底。")
    with pdf.table(headings_style=FontFace(emphasis="")) as table:
        for values in [HEADER, *ROWS]:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.multi_cell(0, 6, "表后说明：库存每日更新。")
    return bytes(pdf.output())


def _docx_with_table() -> bytes:
    document = docx.Document()
    document.add_heading("价格", level=1)
    document.add_paragraph("报价说明：以下价格含税。")
    table = document.add_table(rows=len(ROWS) + 1, cols=3)
    for r, values in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    document.add_paragraph("表后说明：库存每日更新。")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def test_a_ruled_pdf_table_is_read_as_a_markdown_table_in_place() -> None:
    doc = load_bytes(_pdf_with_table(), "报价.pdf")
    pages = [s for s in doc.sections if s.page == 1]
    text = pages[0].text
    assert text.startswith("报价说明")
    assert MARKDOWN_HEADER + "\n| 路由器 R0 | 4000 | 0 |\n| 路由器 R1 | 4015 | 3 |" in text
    assert "| 路由器 R7 | 4105 | 21 |" in text
    # Text after the table (possibly on the next page) keeps its place after it.
    assert doc.text.index("| 路由器 R39 | 4585 | 117 |") < doc.text.index("表后说明")


def test_a_pdf_without_drawn_tables_keeps_its_text_layer() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, "Name  Price\nRouter  4000")
    assert "|" not in load_bytes(bytes(pdf.output()), "plain.pdf").text


def test_docx_and_pdf_table_chunks_carry_the_header_and_whole_rows(e5_embedder: Embedder) -> None:
    chunker = Chunker(ChunkerSettings(target_tokens=120, overlap_tokens=20), e5_embedder)
    rows = {f"| {a} | {b} | {c} |" for a, b, c in ROWS}
    for data, name in ((_docx_with_table(), "报价.docx"), (_pdf_with_table(), "报价.pdf")):
        chunks = [c for c in chunker.chunk(load_bytes(data, name)) if "| 路由器" in c.text]
        assert len(chunks) > 2, name
        seen = []
        for chunk in chunks:
            assert MARKDOWN_HEADER in chunk.text, (name, chunk.text[:120])
            body = [line for line in chunk.text.split("\n") if line.startswith("| 路由器")]
            assert set(body) <= rows, (name, body)
            seen += body
        assert sorted(seen) == sorted(rows), name  # each row whole, once


def test_tables_as_rows_names_every_cell_by_its_column_and_leaves_other_lines() -> None:
    text = ("Season tickets:\n| Car park | Monthly | Annual |\n|---|---|---|\n| Harlow Quay | £110 | £990 |\n"
            "| Brennock | £85 | £760 |\n| Selsby \\| East | | £500 |\nBuy them at the Travel Centre.\n| not | a table |")
    assert tables_as_rows(text) == (
        "Season tickets:\nCar park: Harlow Quay; Monthly: £110; Annual: £990\nCar park: Brennock; Monthly: £85;"
        " Annual: £760\nCar park: Selsby | East; Annual: £500\nBuy them at the Travel Centre.\n| not | a table |"
    )
    assert tables_as_rows(markdown_table([HEADER, *ROWS[:2]])).splitlines() == [
        "产品: 路由器 R0; 单价 (元): 4000; 库存: 0", "产品: 路由器 R1; 单价 (元): 4015; 库存: 3"]
    assert tables_as_rows("no table here") == "no table here"
