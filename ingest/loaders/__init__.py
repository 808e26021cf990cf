"""Turn files (PDF, Word, Excel, PowerPoint, CSV, e-mail, images, Markdown, HTML, plain text) into
``LoadedDocument`` sections.

``load_bytes`` is the core (uploads arrive as bytes); ``load_document`` reads a path;
``DocumentLoader`` is ``load_bytes`` with the configured limits and a per-file time budget (the
indexer uses it). ``precheck_upload`` refuses what can be refused from a name, a size and the first
bytes, before a file is read. Every failure is a ``LoadError`` with a one-line ``reason`` the
UI/CLI can show as is.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ingest.loaders.detect import (
    ARCHIVE_EXTENSIONS,
    IMAGE_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    LoadError,
    binary_kind,
    detail,
    detect_kind,
    extension,
    image_kind,
)
from ingest.loaders.docx import load_docx
from ingest.loaders.email import load_eml
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.ocr import load_image
from ingest.loaders.pdf import load_pdf
from ingest.loaders.pptx import load_pptx
from ingest.loaders.spreadsheet import load_csv, load_xlsx
from ingest.loaders.text import load_text
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument

__all__ = [
    "ARCHIVE_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "DocumentLoader",
    "LoadError",
    "LoaderSettings",
    "load_bytes",
    "load_document",
    "precheck_upload",
]

logger = logging.getLogger(__name__)

_LOADERS: dict[str, Callable[[bytes, str, LoaderSettings], LoadedDocument]] = {
    "pdf": lambda data, name, limits: load_pdf(data, name, limits),
    "docx": lambda data, name, limits: load_docx(data, name),
    "xlsx": load_xlsx,
    "csv": load_csv,
    "pptx": lambda data, name, limits: load_pptx(data, name),
    "email": load_eml,
    "image": load_image,
    "markdown": lambda data, name, limits: load_markdown(data, name),
    "html": lambda data, name, limits: load_html(data, name),
    "text": lambda data, name, limits: load_text(data, name),
}
# Formats whose file size is (about) their text size: refused from the size alone, before decoding.
_PLAIN_TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".csv"})
_MB = 1024 * 1024


def _text_too_large(size: int, limits: LoaderSettings, what: str) -> LoadError:
    return LoadError(
        f"{what} is {size / _MB:,.1f} MB; the limit is {limits.max_text_mb:g} MB of text per document "
        "(split it into smaller files)"
    )


def load_bytes(data: bytes, name: str, limits: LoaderSettings | None = None) -> LoadedDocument:
    """Load a document from memory, in this process and without a time budget (``DocumentLoader``
    adds one). ``name`` only picks the type and becomes ``source``; it is never opened (an upload
    name like '../../etc/passwd.md' is just a label). ``limits`` default to ``LoaderSettings()``."""
    limits = limits or LoaderSettings()
    with _NotesFromWarnings(name) as notes:
        doc = _load(data, name, limits)
    return dataclasses.replace(doc, notes=notes.collected) if notes.collected else doc


def _load(data: bytes, name: str, limits: LoaderSettings) -> LoadedDocument:
    kind = detect_kind(data, name, limits)
    if kind in ("text", "markdown", "csv") and len(data) > limits.max_text_bytes:
        raise _text_too_large(len(data), limits, "the text file")
    try:
        doc = _LOADERS[kind](data, name, limits)
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError(f"{kind} document nested too deeply to parse") from exc
    except MemoryError:
        raise  # the isolated parser turns it into a clear refusal; in-process it is the caller's
    except Exception as exc:  # the loaders wrap parser errors; this is the last line of defence
        logger.exception("%s: unexpected error in the %s loader", name, kind)
        raise LoadError(f"could not read {kind} document: {detail(exc)}") from exc
    # Characters first (free); bytes only when it could matter.
    chars = sum(len(s.text) for s in doc.sections)
    if chars * 4 > limits.max_text_bytes:
        size = sum(len(s.text.encode("utf-8", "replace")) for s in doc.sections)
        if size > limits.max_text_bytes:
            raise _text_too_large(size, limits, f"the text of this {kind} document")
    return doc


class _NotesFromWarnings(logging.Handler):
    """The loaders' warnings about one file, kept as its ``notes``: what they log for the operator
    (a hidden sheet skipped, an attachment not indexed, scanned pages past the OCR budget) is also
    what the person who uploaded the file should be told. Only this thread's records count: in-process
    loads may run in several threads at once."""

    _MAX_NOTES = 10

    def __init__(self, name: str) -> None:
        super().__init__(logging.WARNING)
        self._prefix = " ".join(name.split()) + ": "  # as it reads in a whitespace-normalised message
        self._thread = threading.get_ident()
        self._notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread or len(self._notes) >= self._MAX_NOTES:
            return
        message = " ".join(record.getMessage().split())
        note = message.removeprefix(self._prefix)
        if note and note not in self._notes:
            self._notes.append(note[:297] + "..." if len(note) > 300 else note)

    @property
    def collected(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def __enter__(self) -> _NotesFromWarnings:
        _LOADER_LOGGER.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _LOADER_LOGGER.removeHandler(self)


_LOADER_LOGGER = logging.getLogger("ingest.loaders")


def load_document(path: str | Path, limits: LoaderSettings | None = None) -> LoadedDocument:
    """Read ``path`` and load it; ``source`` is ``str(path)`` as given."""
    p = Path(path)
    try:
        if p.is_dir():
            raise LoadError("is a directory, not a file")
        if p.exists() and not p.is_file():
            # A FIFO or device (/dev/zero) would block or never end when read.
            raise LoadError("not a regular file")
        data = p.read_bytes()
    except LoadError:
        raise
    except FileNotFoundError as exc:
        raise LoadError("file not found") from exc
    except PermissionError as exc:
        raise LoadError("permission denied reading the file") from exc
    except OSError as exc:
        raise LoadError(f"cannot read the file: {exc.strerror or detail(exc)}") from exc
    return load_bytes(data, str(path), limits)


def precheck_upload(name: str, size: int, head: bytes, limits: LoaderSettings | None = None) -> None:
    """Refuse what a name, a size and the first KiB already show, so the file is never read:
    empty files, archives, unsupported types, known binary formats in a text file, and plain-text
    files over the text limit. Raises LoadError; passing is no promise (``load_bytes`` decides)."""
    limits = limits or LoaderSettings()
    ext = extension(name)
    if size == 0:
        raise LoadError("empty file")
    if ext in ARCHIVE_EXTENSIONS:
        raise LoadError(f"archives are not accepted ('{ext}'); upload the documents inside it one by one")
    if ext not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise LoadError(f"unsupported file type '{ext or '(no extension)'}' (supported: {supported})")
    # PDF and Office content is allowed under any of our extensions (content wins), images under an
    # image name, so only the formats no name makes acceptable are refused here.
    what = binary_kind(head)
    if what and not (ext in IMAGE_EXTENSIONS and image_kind(head)):
        raise LoadError(f"binary content in a {ext} file ({what})")
    looks_pdf_or_zip = b"%PDF-" in head or head[:2] == b"PK"
    if ext in _PLAIN_TEXT_EXTENSIONS and not looks_pdf_or_zip and size > limits.max_text_bytes:
        raise _text_too_large(size, limits, "the text file")


from ingest.loaders.isolation import DocumentLoader  # noqa: E402  (it imports load_bytes from here)
