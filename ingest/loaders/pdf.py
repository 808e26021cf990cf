"""PDF loader: pypdf text layer, one Section per non-empty page (``page`` is 1-based)."""
from __future__ import annotations

import io
import logging

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from ingest.loaders.detect import LoadError, clean_text, detail, stem
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

MAX_PDF_PAGES = LoaderSettings().max_pdf_pages  # the default of ``loaders.max_pdf_pages``
NO_TEXT_LAYER = "no extractable text: the PDF has no text layer (a scanned PDF? run OCR on it first)"


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


def load_pdf(data: bytes, name: str, max_pages: int = MAX_PDF_PAGES) -> LoadedDocument:
    """Text of every page with a text layer; scanned (image-only) PDFs and PDFs of more than
    ``max_pages`` pages raise LoadError (the page count is read before any page is parsed)."""
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

    sections: list[Section] = []
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
            sections.append(Section(text=text, page=number))

    if not sections:
        if failed and len(failed) == n_pages:
            raise LoadError(f"not a valid PDF (truncated or corrupt): no page could be read: {last_error}")
        raise LoadError(NO_TEXT_LAYER)
    if failed:
        logger.warning("%s: %d of %d pages unreadable: %s", name, len(failed), n_pages, failed[:20])
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="pdf",
        sections=tuple(sections),
        title=_title(reader) or stem(name),
    )


def _title(reader: PdfReader) -> str:
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except Exception:  # broken Info dictionaries are common and harmless
        return ""
    return " ".join(str(title).split()) if title else ""
