"""Ruled tables in PDFs, read as Markdown tables (pdfplumber's lattice finder).

A PDF's text layer reads a table as loose words, so "4380" ends up lines away from "单价". For the
pages that draw a table, the page text is rebuilt from pdfplumber: the text above, between and below
the tables in reading order, and each table as a Markdown table (``ingest.loaders.tables``), which
the chunker keeps whole per row with its header. Other pages keep pypdf's text.

pdfplumber (pdfminer) costs ~25 ms or more per page, so it only looks at pages that draw enough line
or rectangle objects to hold a ruled table, counted first with pdfium (~2 ms per page).
"""
from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ingest.loaders.detect import clean_text, detail
from ingest.loaders.tables import markdown_table

if TYPE_CHECKING:
    from pdfplumber.page import Page

logger = logging.getLogger(__name__)

# Path objects (lines, rectangles) a page needs before it is searched for a table: a 2x2 table
# drawn cell by cell has 4; a page with only an underline or a frame has 1 or 2.
_MIN_PATHS = 4


def table_page_texts(data: bytes, pages: Iterable[int], name: str = "") -> dict[int, str]:
    """Page text with tables as Markdown, for those of ``pages`` (1-based) that hold a ruled table
    with at least two rows. Never raises: a page it cannot read is left to pypdf's text."""
    candidates = _pages_with_drawings(data, pages, name)
    if not candidates:
        return {}
    import pdfplumber

    texts: dict[int, str] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for number in candidates:
                try:
                    text = _page_text(pdf.pages[number - 1])
                except Exception as exc:  # one odd page keeps its plain text
                    logger.warning("%s: tables on page %d not read (%s)", name, number, detail(exc))
                    continue
                if text is not None:
                    texts[number] = text
    except Exception as exc:
        logger.warning("%s: tables not read (%s); using the plain text layer", name, detail(exc))
    return texts


def _pages_with_drawings(data: bytes, pages: Iterable[int], name: str) -> list[int]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    found: list[int] = []
    try:
        document = pdfium.PdfDocument(data)
    except Exception as exc:
        logger.warning("%s: not searched for tables (%s)", name, detail(exc))
        return found
    try:
        for number in pages:
            page = document[number - 1]
            try:
                paths = sum(1 for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2))
            finally:
                page.close()
            if paths >= _MIN_PATHS:
                found.append(number)
    except Exception as exc:
        logger.warning("%s: not searched for tables (%s)", name, detail(exc))
    finally:
        document.close()
    return found


def _page_text(page: Page) -> str | None:
    """The page's text with its tables in place as Markdown; None when it has no real table."""
    tables = [t for t in page.find_tables() if len(t.rows) >= 2]
    if not tables:
        return None
    width, height = float(page.width), float(page.height)
    parts: list[str] = []
    top = 0.0
    for table in sorted(tables, key=lambda t: t.bbox[1]):
        _, table_top, _, bottom = table.bbox
        if table_top > top:
            parts.append(_text_between(page, top, min(table_top, height), width))
        parts.append(markdown_table(table.extract()))
        top = max(top, bottom)
    if top < height:
        parts.append(_text_between(page, top, height, width))
    return clean_text("\n\n".join(p for p in parts if p.strip()))


def _text_between(page: Page, top: float, bottom: float, width: float) -> str:
    if bottom - top < 1:
        return ""
    region = page.crop((0, top, width, bottom), strict=False)
    return str(region.extract_text() or "")
