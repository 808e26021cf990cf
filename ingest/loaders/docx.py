"""DOCX loader: python-docx, body paragraphs and tables (as Markdown tables) in document order."""
from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import docx
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.loaders.detect import LoadError, SectionBuilder, detail, no_text_error, stem
from ingest.loaders.tables import markdown_table
from ingest.types import LoadedDocument, sha256_hex

logger = logging.getLogger(__name__)

# English built-in names (python-docx maps Word's lower-case ids to these) and Chinese Word's.
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.I)
_TITLE_STYLES = {"title", "标题"}
_P, _TBL = qn("w:p"), qn("w:tbl")
# Wrappers whose children are ordinary body content: content controls, custom XML, tracked inserts.
_CONTAINERS = {qn("w:sdt"): qn("w:sdtContent"), qn("w:customXml"): None, qn("w:ins"): None}


def _iter_blocks(parent: BaseOxmlElement, doc: DocxDocument) -> Iterator[Paragraph | Table]:
    """Paragraphs and tables in body order (python-docx lists them separately otherwise)."""
    for child in parent.iterchildren():
        tag = child.tag
        if tag == _P:
            yield Paragraph(child, doc)
        elif tag == _TBL:
            yield Table(child, doc)
        elif tag in _CONTAINERS:
            inner_tag = _CONTAINERS[tag]
            inner = child.find(inner_tag) if inner_tag else child
            if inner is not None:
                yield from _iter_blocks(inner, doc)


def _style_name(par: Paragraph) -> str:
    try:
        style = par.style
        return (style.name or "") if style is not None else ""
    except Exception:  # a dangling style id or a broken styles part: treat as body text
        return ""


def _heading_level(style: str) -> int | None:
    """0 for Title (above every H1), n for Heading n, None for body text."""
    if style.strip().lower() in _TITLE_STYLES:
        return 0
    m = _HEADING_STYLE.match(style.strip())
    return int(m.group(1)) if m else None


_T, _TAB, _BR, _CR = qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")
_NO_BREAK_HYPHEN = qn("w:noBreakHyphen")
# Deleted/moved-away revisions, properties, and the VML fallback copy of a text box (the
# mc:Choice copy is read instead); skipping them avoids duplicated or deleted text.
_SKIP = {
    qn("w:del"),
    qn("w:moveFrom"),
    qn("w:pPr"),
    qn("w:rPr"),
    qn("w:tcPr"),
    "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback",
}


def _xml_text(element: BaseOxmlElement) -> str:
    """Visible text under a w:p or w:tc, in order.

    python-docx's ``Paragraph.text`` only reads direct runs and hyperlinks, so text in tracked
    insertions, smart tags, inline content controls, simple fields and text boxes would be lost.
    """
    out: list[str] = []

    def visit(el: BaseOxmlElement) -> None:
        for child in el:
            tag = child.tag
            if tag in _SKIP:
                continue
            if tag == _T:
                out.append(child.text or "")
            elif tag == _TAB:
                out.append("\t")
            elif tag in (_BR, _CR):
                out.append("\n")
            elif tag == _NO_BREAK_HYPHEN:
                out.append("-")
            elif tag == _P:  # a paragraph in a text box or table cell
                out.append("\n")
                visit(child)
                out.append("\n")
            else:
                visit(child)

    visit(element)
    return "".join(out)


def _table_text(table: Table) -> str:
    """A Markdown table on the Word table's grid, its first row the header. A cell merged across
    columns comes back once per grid column: its text is kept in the first and the rest left empty
    (the header's are joined, see ``markdown_table``); a cell merged down repeats on each row, so
    every row reads on its own."""
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            cells.append("" if cell._tc is previous else " ".join(_xml_text(cell._tc).split()))
            previous = cell._tc
        rows.append(cells)
    return markdown_table(rows)


def _raw_text(element: BaseOxmlElement) -> str:
    """Fallback for a table python-docx cannot model: every w:t in it, row by row."""
    rows = []
    for tr in element.iter(qn("w:tr")):
        rows.append(["".join(t.text or "" for t in tc.iter(qn("w:t"))) for tc in tr.iter(qn("w:tc"))])
    return markdown_table(rows)


def load_docx(data: bytes, name: str) -> LoadedDocument:
    """Heading 1..9 (and Title) paragraphs build ``heading_path``; tables become Markdown tables."""
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # PackageNotFoundError, KeyError, XMLSyntaxError, BadZipFile, ...
        raise LoadError(f"not a valid .docx (corrupt or not a Word document): {detail(exc)}") from exc

    builder = SectionBuilder()
    first_heading = ""
    last_was_item = False
    try:
        for block in _iter_blocks(document.element.body, document):
            if isinstance(block, Table):
                try:
                    text = _table_text(block)
                except Exception as exc:  # malformed grid/merge markup
                    logger.warning("%s: table layout unreadable (%s); using raw cell text", name, detail(exc))
                    text = _raw_text(block._tbl)
                builder.add(text)
                last_was_item = False
                continue
            text = _xml_text(block._p).strip("\n")
            style = _style_name(block)
            level = _heading_level(style)
            if level is not None and text.strip():
                builder.heading(level, text)
                first_heading = first_heading or " ".join(text.split())
                last_was_item = False
            elif text.strip():
                is_item = style.lower().startswith("list")
                builder.add(("- " + text.strip()) if is_item else text, tight=is_item and last_was_item)
                last_was_item = is_item
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError("docx nesting too deep to read") from exc
    except Exception as exc:  # python-docx on malformed XML that parsed but breaks its model
        raise LoadError(f"not a valid .docx (unreadable document body): {detail(exc)}") from exc

    sections = builder.build()
    if not sections:
        raise no_text_error("the Word document has no text")
    try:
        title = " ".join((document.core_properties.title or "").split())
    except Exception:  # a broken docProps/core.xml should not lose the document
        title = ""
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="docx",
        sections=sections,
        title=title or first_heading or stem(name),
    )
