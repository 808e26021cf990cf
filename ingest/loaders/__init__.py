"""Turn files (PDF, DOCX, Markdown, HTML, plain text) into ``LoadedDocument`` sections.

``load_bytes`` is the core (uploads arrive as bytes); ``load_document`` reads a path. Every failure
is a ``LoadError`` with a one-line ``reason`` the UI/CLI can show as is.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ingest.loaders.detect import SUPPORTED_EXTENSIONS, LoadError, detail, detect_kind
from ingest.loaders.docx import load_docx
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.text import load_text
from ingest.types import LoadedDocument

__all__ = ["SUPPORTED_EXTENSIONS", "LoadError", "load_bytes", "load_document"]

logger = logging.getLogger(__name__)

_LOADERS: dict[str, Callable[[bytes, str], LoadedDocument]] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "markdown": load_markdown,
    "html": load_html,
    "text": load_text,
}


def load_bytes(data: bytes, name: str) -> LoadedDocument:
    """Load a document from memory. ``name`` only picks the type and becomes ``source``;
    it is never opened (an upload name like '../../etc/passwd.md' is just a label)."""
    kind = detect_kind(data, name)
    try:
        return _LOADERS[kind](data, name)
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError(f"{kind} document nested too deeply to parse") from exc
    except Exception as exc:  # the loaders wrap parser errors; this is the last line of defence
        logger.exception("%s: unexpected error in the %s loader", name, kind)
        raise LoadError(f"could not read {kind} document: {detail(exc)}") from exc


def load_document(path: str | Path) -> LoadedDocument:
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
    return load_bytes(data, str(path))
