"""Spreadsheet loaders: Excel workbooks (.xlsx, openpyxl) and CSV files.

Each visible sheet becomes one Section holding one Markdown table (``ingest.loaders.tables``): the
header row(s) on top, then one line per non-empty data row, and ``row_numbers`` holding each data
row's number in the sheet. The chunker splits such a section between rows and repeats the header in
every chunk, so a chunk read alone still says what each figure is, and names the rows it holds
("Prices > rows 12-40").

- Formulas are read as their values (the values Excel saved with the file; a formula never
  calculated, e.g. in a file written by a script, reads empty).
- Merged cells are filled with their value across the merged area: a merged group label in the
  header reads "Price / CNY", "Price / USD", and a category merged down a column repeats on each row.
- A top row with a single value across the sheet (a title) goes into the section's heading.
- Hidden sheets are skipped, and the log says which.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ingest.loaders.detect import LoadError, decode_text, detail, no_text_error, stem
from ingest.loaders.tables import markdown_table
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

_MAX_CAPTION_ROWS = 2
_CSV_DELIMITERS = ",;\t|"


@dataclass
class _Sheet:
    """What a loader read from one sheet: rows by sheet row number (cells by 0-based column), and
    merged areas as (first row, first column, last row, last column), 1-based and inclusive."""

    name: str
    rows: dict[int, list[str]] = field(default_factory=dict)
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)


class _CellBudget:
    """Counts the cells a workbook makes the parser walk; refuses past ``loaders.max_sheet_cells``."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.used = limit, what, 0

    def spend(self, cells: int) -> None:
        self.used += cells
        if self.used > self.limit:
            raise LoadError(
                f"refused: the {self.what} has more than {self.limit:,} cells (loaders.max_sheet_cells); "
                "split it or raise the limit"
            )


# --- .xlsx -----------------------------------------------------------------------------------------


def load_xlsx(data: bytes, name: str, limits: LoaderSettings) -> LoadedDocument:
    """Every visible worksheet of an Excel workbook as a Markdown table section."""
    import openpyxl
    from openpyxl.worksheet._reader import WorkSheetParser

    try:
        # read_only streams the sheet XML instead of building a cell object per cell; data_only
        # gives formulas' saved values.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # InvalidFileException, KeyError, BadZipFile, XML errors
        raise LoadError(f"not a valid .xlsx (corrupt or not an Excel workbook): {detail(exc)}") from exc
    budget = _CellBudget(limits.max_sheet_cells, "workbook")
    sections: list[Section] = []
    hidden: list[str] = []
    try:
        for worksheet in workbook.worksheets:
            if getattr(worksheet, "sheet_state", "visible") != "visible":
                hidden.append(worksheet.title)
                continue
            sheet = _Sheet(worksheet.title)
            # The parser openpyxl's own read-only rows use, driven directly: it yields only the rows
            # the file holds (a sheet declaring a million empty rows costs nothing) and, once the
            # rows are read, the merged areas, which read-only worksheets do not expose. Private
            # API, pinned with openpyxl in pyproject.toml.
            with worksheet._get_source() as source:
                parser = WorkSheetParser(
                    source,
                    worksheet._shared_strings,
                    data_only=True,
                    epoch=workbook.epoch,
                    date_formats=workbook._date_formats,
                    timedelta_formats=workbook._timedelta_formats,
                )
                for number, cells in parser.parse():
                    budget.spend(max(len(cells), 1))
                    values = {int(c["column"]) - 1: _cell_text(c["value"]) for c in cells}
                    values = {col: text for col, text in values.items() if text}
                    if values:
                        row = [""] * (max(values) + 1)
                        for col, text in values.items():
                            row[col] = text
                        sheet.rows[int(number)] = row
                if parser.merged_cells is not None:
                    sheet.merges = [(m.min_row, m.min_col, m.max_row, m.max_col) for m in parser.merged_cells.mergeCell]
            sections.extend(_sheet_sections(sheet))
    except LoadError:
        raise
    except Exception as exc:  # malformed sheet XML that opened but does not parse
        raise LoadError(f"not a valid .xlsx (unreadable sheet): {detail(exc)}") from exc
    finally:
        workbook.close()
    if hidden:
        logger.warning("%s: hidden sheets not indexed: %s", name, ", ".join(repr(h) for h in hidden))
    if not sections:
        skipped = " (hidden sheets are skipped)" if hidden else ""
        raise no_text_error(f"the workbook's visible sheets are empty{skipped}")
    try:
        title = " ".join((workbook.properties.title or "").split())
    except Exception:  # broken docProps/core.xml: the file name will do
        title = ""
    return LoadedDocument(
        source=name, doc_id=sha256_hex(data), file_type="xlsx", sections=tuple(sections), title=title or stem(name)
    )


def _cell_text(value: Any) -> str:
    """A cell value as a reader would see it: integral floats without '.0', dates without a
    midnight time, booleans as Excel writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.10g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())


# --- .csv ------------------------------------------------------------------------------------------


def load_csv(data: bytes, name: str, limits: LoaderSettings) -> LoadedDocument:
    """A CSV file (UTF-8, UTF-16 with BOM, GBK/GB18030; comma, semicolon, tab or pipe separated) as
    one Markdown table section."""
    text, encoding = decode_text(data, name)
    delimiter = _sniff_delimiter(text)
    sheet = _Sheet("")
    budget = _CellBudget(limits.max_sheet_cells, "CSV file")
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
            budget.spend(max(len(cells), 1))
            row = [" ".join(c.split()) for c in cells]
            while row and not row[-1]:
                row.pop()
            if row:
                sheet.rows[number] = row
    except csv.Error as exc:  # a NUL byte or a field over the size limit
        raise LoadError(f"not a valid CSV file: {detail(exc)}") from exc
    sections = _sheet_sections(sheet)
    if not sections:
        raise no_text_error("the CSV file has no values")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="csv",
        sections=tuple(sections),
        title=stem(name),
        encoding=encoding,
    )


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.split("\n", 50)[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS).delimiter
    except csv.Error:  # one column, or too irregular to tell: commas, the format's name
        return ","


# --- a sheet as sections ---------------------------------------------------------------------------


def _sheet_sections(sheet: _Sheet) -> list[Section]:
    rows = _fill_merges(sheet)
    numbers = sorted(rows)
    if not numbers:
        return []
    rows, numbers = _drop_empty_columns(rows, numbers)
    heading = [sheet.name] if sheet.name else []
    # Title rows: one value across the sheet (usually merged) above the real header.
    while len(numbers) > 1 and len(heading) < _MAX_CAPTION_ROWS + 1 and _is_caption(rows[numbers[0]]):
        heading.append(next(v for v in rows[numbers[0]] if v))
        numbers = numbers[1:]
    header_count = _header_row_count(numbers, sheet.merges)
    table_rows = [rows[n] for n in numbers]
    text = markdown_table(table_rows, header_rows=header_count)
    if not text:
        return []
    return [Section(text=text, heading_path=tuple(heading), row_numbers=tuple(numbers[header_count:]))]


def _fill_merges(sheet: _Sheet) -> dict[int, list[str]]:
    """Rows with every merged area filled with its top-left value. Only rows the sheet holds are
    touched, and a merge over a whole sheet's worth of columns is clipped to the widest real row."""
    rows = {number: list(cells) for number, cells in sheet.rows.items()}
    width = max((len(r) for r in rows.values()), default=0)
    for first_row, first_col, last_row, last_col in sheet.merges:
        source = rows.get(first_row)
        if source is None or first_col - 1 >= len(source) or not source[first_col - 1]:
            continue
        value = source[first_col - 1]
        last_col = min(last_col, width)
        for number in _rows_between(rows, first_row, last_row):
            row = rows[number]
            if len(row) < last_col:
                row.extend([""] * (last_col - len(row)))
            for col in range(first_col - 1, last_col):
                row[col] = row[col] or value
    return rows


def _rows_between(rows: dict[int, list[str]], first: int, last: int) -> Iterator[int]:
    if last - first < len(rows):
        yield from (n for n in range(first, last + 1) if n in rows)
    else:  # a merge spanning far more rows than the sheet holds
        yield from (n for n in rows if first <= n <= last)


def _drop_empty_columns(rows: dict[int, list[str]], numbers: list[int]) -> tuple[dict[int, list[str]], list[int]]:
    width = max(len(rows[n]) for n in numbers)
    used = [col for col in range(width) if any(col < len(rows[n]) and rows[n][col] for n in numbers)]
    if len(used) == width:
        return rows, numbers
    return {n: [rows[n][c] if c < len(rows[n]) else "" for c in used] for n in numbers}, numbers


def _is_caption(row: list[str]) -> bool:
    return len(row) > 1 and len({v for v in row if v}) == 1


def _header_row_count(numbers: list[int], merges: list[tuple[int, int, int, int]]) -> int:
    """1, or more when the header has merged cells: a label merged across columns has sub-labels in
    the row below it, and a label merged down covers the rows it spans."""
    first = numbers[0]
    last = first
    for first_row, first_col, last_row, last_col in merges:
        if first_row == first:
            last = max(last, last_row)
            if last_col > first_col:
                last = max(last, first + 1)
    count = sum(1 for n in numbers if n <= last)
    return max(1, min(count, len(numbers) - 1)) if len(numbers) > 1 else 1
