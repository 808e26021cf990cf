"""PDF loader: pypdf text layer, one Section per non-empty page (``page`` is 1-based).

Pages that draw a ruled table get it as a Markdown table (``ingest.loaders.pdf_tables``).
Pages without a text layer (scans) are read with OCR (``ingest.loaders.ocr``), at most
``loaders.max_ocr_pages`` of them per file, and so are pages whose text layer is only a few
characters (a page number stamped on a scan) when an image covers most of the page.
"""
from __future__ import annotations

import io
import logging
import time

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from ingest.loaders import ocr
from ingest.loaders.detect import LoadError, clean_text, detail, stem
from ingest.loaders.pdf_tables import table_page_texts
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

MAX_PDF_PAGES = LoaderSettings().max_pdf_pages  # the default of ``loaders.max_pdf_pages``
NO_TEXT_LAYER = "no extractable text: the PDF has no text layer (a scanned PDF?)"
# A page with less text than this may be a scan with a stamped page number (see ``pdf_pages_worth_ocr``).
SPARSE_PAGE_CHARS = 20


def _open(data: bytes, name: str) -> PdfReader:
    try:
        # strict=False: pypdf repairs what it can (bad xref offsets, truncated trailers) and logs.
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:
        raise LoadError(f"not a valid PDF (truncated or corrupt): {detail(exc)}") from exc
    try:
        encrypted = reader.is_encrypted
    except Exception as exc:
        raise LoadError(f"not a valid PDF (truncated or corrupt): {detail(exc)}") from exc
    if encrypted:
        # Many PDFs are "encrypted" only to set permissions, with an empty user password.
        try:
            result = reader.decrypt("")
        except DependencyError as exc:
            raise LoadError(f"encrypted PDF needs a crypto library to open: {detail(exc)}") from exc
        except Exception as exc:
            raise LoadError(f"encrypted PDF could not be decrypted: {detail(exc)}") from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise LoadError("PDF is password-protected")
        logger.info("%s: opened encrypted PDF with the empty password", name)
    return reader


def load_pdf(data: bytes, name: str, limits: LoaderSettings | None = None) -> LoadedDocument:
    """Text of every page: its text layer, or OCR for scanned pages (see the module docstring).
    A PDF of more than ``limits.max_pdf_pages`` pages is refused from its page count, before any
    page is parsed; one without text (no text layer, and OCR off or finding nothing) too."""
    limits = limits or LoaderSettings()
    started = time.monotonic()
    max_pages = limits.max_pdf_pages
    reader = _open(data, name)
    try:
        n_pages = len(reader.pages)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"not a valid PDF (truncated or corrupt): {detail(exc)}") from exc
    if n_pages > max_pages:
        raise LoadError(f"too many pages ({n_pages}; the limit is {max_pages} pages per PDF); split the PDF")
    if n_pages == 0:
        raise LoadError("not a valid PDF (truncated or corrupt): no pages found")

    texts: dict[int, str] = {}
    empty: list[int] = []
    sparse: list[int] = []
    failed: list[int] = []
    last_error = ""
    for number in range(1, n_pages + 1):
        try:
            raw = reader.pages[number - 1].extract_text()
        except RecursionError:
            raw, last_error = None, "content nesting too deep"
        except Exception as exc:  # a damaged page should not cost the whole document
            raw, last_error = None, detail(exc)
        if raw is None:
            failed.append(number)
            logger.warning("%s: page %d unreadable (%s); skipped", name, number, last_error)
            continue
        text = clean_text(raw)
        if text:
            texts[number] = text
        if len(text) < SPARSE_PAGE_CHARS:
            (sparse if text else empty).append(number)

    # Pages with a real text layer that draw a ruled table: the table as a Markdown table, in place.
    texts.update(table_page_texts(data, [n for n, t in texts.items() if len(t) >= SPARSE_PAGE_CHARS], name))
    ocr_note = _ocr_pages(data, name, limits, texts, empty, sparse, started)
    sections = [Section(text=text, page=number) for number, text in sorted(texts.items()) if text]
    if not sections:
        if failed and len(failed) == n_pages:
            raise LoadError(f"not a valid PDF (truncated or corrupt): no page could be read: {last_error}")
        raise LoadError(f"{NO_TEXT_LAYER} and {ocr_note}" if ocr_note else NO_TEXT_LAYER)
    if failed:
        logger.warning("%s: %d of %d pages unreadable: %s", name, len(failed), n_pages, failed[:20])
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="pdf",
        sections=tuple(sections),
        title=_title(reader) or stem(name),
    )


def _ocr_pages(
    data: bytes,
    name: str,
    limits: LoaderSettings,
    texts: dict[int, str],
    empty: list[int],
    sparse: list[int],
    started: float,
) -> str:
    """OCR the scanned pages into ``texts`` (in place). Returns what to tell the user if the PDF
    ends up without text: why OCR did not run or what it found ('' when there was nothing to OCR)."""
    if not empty and not sparse:
        return ""
    unavailable = ocr.ocr_unavailable_reason(limits)
    if unavailable:
        if empty and texts:
            logger.warning("%s: %d pages have no text layer and were not read: %s", name, len(empty), unavailable)
        return unavailable if empty else ""
    pages = ocr.pdf_pages_worth_ocr(data, empty, sparse)
    if not pages:
        return "its pages are blank" if empty else ""
    if len(pages) > limits.max_ocr_pages:
        skipped = pages[limits.max_ocr_pages :]
        pages = pages[: limits.max_ocr_pages]
        logger.warning(
            "%s: %d scanned pages over the OCR limit of %d pages per file (loaders.max_ocr_pages) not read: %s",
            name, len(skipped), limits.max_ocr_pages, ocr.page_list(skipped),
        )
    try:
        read = ocr.ocr_pdf_pages(
            data, pages, limits, name=name, deadline=ocr.parse_deadline(limits, started)
        )
    except LoadError as exc:
        logger.warning("%s: pages without a text layer not read: %s", name, exc.reason)
        return "its pages could not be rendered for OCR"
    for number, text in read.items():
        # A sparse page keeps its text layer unless OCR found more (the page number is in both).
        if len(text) > len(texts.get(number, "")):
            texts[number] = text
    return "OCR found no text on its pages" if read else "OCR could not read its pages (see the log)"


def _title(reader: PdfReader) -> str:
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except Exception:  # broken Info dictionaries are common and harmless
        return ""
    return " ".join(str(title).split()) if title else ""
