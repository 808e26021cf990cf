"""Spreadsheets (.xlsx, .csv): one Markdown table per sheet, merged headers joined, formulas as their
values, hidden sheets skipped, row numbers kept; hostile workbooks refused with a reason."""
from __future__ import annotations

import io
import re
import zipfile

import openpyxl
import pytest
import xlsxwriter

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.loaders import DocumentLoader, LoadError, LoaderSettings, load_bytes
from ingest.settings import ChunkerSettings


def _price_workbook(extra_rows: int = 0) -> bytes:
    """Two visible sheets and a hidden one. '价格表' has a title row merged across the sheet, a
    header with '产品' merged down two rows and '单价' merged across two columns over '人民币' and
    '美元', and a formula total with its saved value."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    book.set_properties({"title": "2026 价格"})
    prices = book.add_worksheet("价格表")
    prices.merge_range("A1:D1", "2026 年产品价格")
    prices.merge_range("A2:A3", "产品")
    prices.merge_range("B2:C2", "单价")
    prices.write("D2", "库存")
    prices.write_row("B3", ["人民币", "美元"])
    prices.write("D3", "件")
    rows = [("路由器 R1", 4380, 610, 12), ("交换机 S8", 1250.5, 174.2, 40), ("网卡 N2", 299, 41, 300)]
    rows += [(f"配件 {i}", 10 + i, 1 + i, i) for i in range(extra_rows)]
    for r, row in enumerate(rows, start=4):
        prices.write_row(r - 1, 0, row)
    last = 3 + len(rows)
    prices.write_formula(last, 3, f"=SUM(D4:D{last})", None, sum(int(r[3]) for r in rows))
    prices.write(last, 0, "合计")
    staff = book.add_worksheet("Contacts")
    staff.write_row("A1", ["Name", "Role", "Phone"])
    staff.write_row("A2", ["Ana Lima", "Sales lead", "+86 21 5555 0101"])
    staff.write_row("A4", ["Ben Wu", "Support", "+86 21 5555 0102"])  # row 3 left empty
    secret = book.add_worksheet("Internal")
    secret.write("A1", "hidden margin 37%")
    secret.hide()
    book.close()
    return buf.getvalue()


def test_xlsx_sheets_become_markdown_tables_with_joined_headers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        doc = load_bytes(_price_workbook(), "prices.xlsx")
    assert doc.file_type == "xlsx" and doc.title == "2026 价格"
    prices, contacts = doc.sections
    assert prices.heading_path == ("价格表", "2026 年产品价格")
    assert prices.text.split("\n") == [
        "| 产品 | 单价 / 人民币 | 单价 / 美元 | 库存 / 件 |",
        "| --- | --- | --- | --- |",
        "| 路由器 R1 | 4380 | 610 | 12 |",
        "| 交换机 S8 | 1250.5 | 174.2 | 40 |",
        "| 网卡 N2 | 299 | 41 | 300 |",
        "| 合计 |  |  | 352 |",  # the formula's saved value
    ]
    assert prices.row_numbers == (4, 5, 6, 7)
    assert contacts.heading_path == ("Contacts",)
    assert contacts.text.split("\n")[2:] == [
        "| Ana Lima | Sales lead | +86 21 5555 0101 |",
        "| Ben Wu | Support | +86 21 5555 0102 |",
    ]
    assert contacts.row_numbers == (2, 4)
    assert "hidden margin" not in doc.text
    assert "hidden sheets not indexed: 'Internal'" in caplog.text
    assert doc.notes == ("hidden sheets not indexed: 'Internal'",)  # said to whoever indexed the file


def test_a_files_notes_survive_the_isolated_parser() -> None:
    data = _price_workbook()
    isolated = DocumentLoader(LoaderSettings())(data, "prices.docx")  # mislabelled too
    assert isolated == load_bytes(data, "prices.docx")
    assert isolated.notes == (
        "extension '.docx' but content is a .xlsx; loading it as such",
        "hidden sheets not indexed: 'Internal'",
    )


def test_a_long_sheet_chunks_with_its_header_and_row_ranges(e5_embedder: Embedder) -> None:
    doc = load_bytes(_price_workbook(extra_rows=120), "prices.xlsx")
    chunks = Chunker(ChunkerSettings(), e5_embedder).chunk(doc)
    price_chunks = [c for c in chunks if c.section.startswith("价格表")]
    assert len(price_chunks) > 2
    ranges = []
    for chunk in price_chunks:
        assert chunk.text.startswith("| 产品 | 单价 / 人民币 | 单价 / 美元 | 库存 / 件 |\n| --- |")
        match = re.fullmatch(r"价格表 > 2026 年产品价格 > rows (\d+)-(\d+)", chunk.section)
        assert match, chunk.section
        ranges.append((int(match.group(1)), int(match.group(2)), chunk.text))
    # '配件 60' is on sheet row 67 (three header rows, three products, then 配件 0 on row 7).
    (holder,) = [text for first, last, text in ranges if first <= 67 <= last]
    assert "| 配件 60 | 70 | 61 | 60 |" in holder


def test_csv_in_gbk_with_semicolons() -> None:
    text = "城市;门店;电话\n上海;徐家汇店;021-5555 0101\n\n杭州;西湖店;0571-5555 0102\n"
    doc = load_bytes(text.encode("gbk"), "门店.csv")
    assert doc.file_type == "csv" and doc.encoding == "gbk"
    (section,) = doc.sections
    assert section.text.split("\n") == [
        "| 城市 | 门店 | 电话 |",
        "| --- | --- | --- |",
        "| 上海 | 徐家汇店 | 021-5555 0101 |",
        "| 杭州 | 西湖店 | 0571-5555 0102 |",
    ]
    assert section.row_numbers == (2, 4)


def test_csv_quoted_fields_keep_their_commas_and_pipes() -> None:
    doc = load_bytes(b'name,note\n"Lee, A.","a|b line\nbreak"\n', "notes.csv")
    assert doc.sections[0].text.split("\n")[2] == "| Lee, A. | a\\|b line break |"


def _with_sheet_xml(data: bytes, sheet_xml: bytes) -> bytes:
    """The workbook ``data`` with its first sheet's XML replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = sheet_xml if item.filename == "xl/worksheets/sheet1.xml" else src.read(item.filename)
            dst.writestr(item, body)
    return out.getvalue()


def _one_cell_workbook() -> bytes:
    book = openpyxl.Workbook()
    book.active["A1"] = "x"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_a_hundred_thousand_empty_rows_cost_nothing_and_an_empty_sheet_is_refused() -> None:
    ns = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    empty_rows = b"".join(b'<row r="%d"/>' % i for i in range(1, 100_001))
    head = b'<worksheet ' + ns + b'><dimension ref="A1:XFD1048576"/><sheetData>'
    last = b'<row r="100001"><c r="A100001" t="inlineStr"><is><t>total 42</t></is></c></row>'
    sheet = head + empty_rows + last + b"</sheetData></worksheet>"
    doc = load_bytes(_with_sheet_xml(_one_cell_workbook(), sheet), "t.xlsx")
    assert doc.text == "| total 42 |\n| --- |"
    with pytest.raises(LoadError, match="no extractable text.*visible sheets are empty"):
        load_bytes(_with_sheet_xml(_one_cell_workbook(), head + empty_rows + b"</sheetData></worksheet>"), "t.xlsx")
    with pytest.raises(LoadError, match="CSV file has no values"):
        load_bytes(b",,,\n" * 100_000, "empty.csv")


def test_workbooks_over_the_cell_limit_are_refused() -> None:
    limits = LoaderSettings(max_sheet_cells=10)
    with pytest.raises(LoadError, match=r"more than 10 cells \(loaders.max_sheet_cells\)"):
        load_bytes(_price_workbook(), "prices.xlsx", limits)
    with pytest.raises(LoadError, match="CSV file has more than 10 cells"):
        load_bytes(b"a,b,c\n" * 5, "big.csv", limits)


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.95])
def test_truncated_or_corrupt_workbooks_are_refused_with_a_reason(keep: float) -> None:
    data = _price_workbook()
    with pytest.raises(LoadError) as exc:
        load_bytes(data[: int(len(data) * keep)], "cut.xlsx")
    assert "not a valid" in exc.value.reason


def test_a_workbook_named_docx_loads_as_a_workbook() -> None:
    assert load_bytes(_price_workbook(), "prices.docx").file_type == "xlsx"


def test_an_uploads_title_is_its_name_without_the_stored_hash() -> None:
    assert load_bytes(_one_cell_workbook(), "data/uploads/门店价格-e478f918ec3e.xlsx").title == "门店价格"
