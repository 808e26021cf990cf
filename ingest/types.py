"""Typed records passed between the ingestion stages."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePath


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def format_location(page: int | None, section: str) -> str:
    """Where a piece of text sits, for people: 'p. 3', 'Intro > Setup', 'p. 3, Intro' or ''.

    The one place this is spelled out, so a section, a chunk and a search hit never disagree."""
    parts = [f"p. {page}"] if page is not None else []
    if section:
        parts.append(section)
    return ", ".join(parts)


# A spreadsheet chunk's section ends with the rows it holds ("Sheet1 > rows 2-40"): where it sits,
# not what it is about.
_ROWS_LABEL_RE = re.compile(r"(?:^|\s>\s)rows? \d+(?:-\d+)?$")
# What a chunk is indexed with: 1, its text; 2, its heading path and its text (indexed_text). Stored with
# each registered document, so that a document indexed in an older format is indexed again.
INDEX_FORMAT = 2
# The most specific end of a heading path, at most this many characters, is indexed with the text.
HEADING_INDEX_CHARS = 120


def indexed_text(text: str, section: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its heading path on a line of its own, then
    its text. A chunk under "Pricing > How much does Lumen Beacon cost?" holds only "- Team: $12 per
    user per month ..."; without its heading neither search finds it for "What does the Team plan
    cost?". The chunk's ``text`` (what is quoted and shown) does not change."""
    heading = _ROWS_LABEL_RE.sub("", section).strip()
    if len(heading) > HEADING_INDEX_CHARS:
        tail = heading[-HEADING_INDEX_CHARS:]
        heading = tail.split(" > ", 1)[1] if " > " in tail else tail
    return f"{heading}\n{text}" if heading else text


_UPLOAD_HASH_RE = re.compile(r"-[0-9a-f]{12}(?=\.[^.]+$|$)")


def source_label(source: str) -> str:
    """The file name of a source (paths are noise to a reader or a model and may reveal the server's
    layout), without the content-hash suffix uploads are stored with (``handbook-1a2b3c4d5e6f.md``
    -> ``handbook.md``). Here, beside the chunk, so every layer that shows a source labels it alike."""
    name = PurePath(source.replace("\\", "/")).name or source
    return _UPLOAD_HASH_RE.sub("", name)


@dataclass(frozen=True)
class Section:
    """A contiguous piece of a loaded document with where it came from."""

    text: str
    page: int | None = None  # 1-based page number (PDF)
    heading_path: tuple[str, ...] = ()  # headings above this text (Markdown, HTML, DOCX)
    # A section that is one Markdown table read from a spreadsheet: the sheet's row number of each
    # data row, in order, so every chunk of it can say which rows it holds ("rows 12-40").
    row_numbers: tuple[int, ...] = ()

    @property
    def location(self) -> str:
        """Human-readable location: 'p. 3' or 'Intro > Setup' or ''."""
        return format_location(self.page, " > ".join(self.heading_path))


@dataclass(frozen=True)
class LoadedDocument:
    """A file turned into text sections. ``doc_id`` is the sha256 of the file's bytes."""

    source: str  # the path or upload name the user gave
    doc_id: str
    file_type: str  # "pdf" | "docx" | "markdown" | "html" | "text" | "xlsx" | "csv" | "pptx" | "email" | "image"
    sections: tuple[Section, ...]
    title: str = ""
    encoding: str | None = None  # detected text encoding, where it applies
    # What the reader of an ingestion report should know about how the file was read: parts left out
    # (hidden sheets, attachments, scanned pages past the OCR limits) or a mislabelled type.
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit. ``chunk_id`` is a content hash: same document and text, same id.

    The only chunk record: the vector store returns it from searches, and retrieval wraps it
    (``rag_app.retrieval.results.RetrievedChunk``) with its scores rather than copying its fields."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    ordinal: int  # position of the chunk within its document, from 0
    page: int | None = None
    section: str = ""  # heading path joined with ' > '
    token_count: int = 0  # model tokens of the embedder's input (prefix, heading and special tokens included)

    @property
    def location(self) -> str:
        return format_location(self.page, self.section)

    @property
    def indexed_text(self) -> str:
        """The text embedded and keyword-indexed: the heading path, then the text (:func:`indexed_text`)."""
        return indexed_text(self.text, self.section)


def make_chunk_id(doc_id: str, ordinal: int, text: str) -> str:
    # The document's content hash + position + text: deterministic for identical input, distinct for
    # identical boilerplate in two documents (deleting one must not remove the other's chunk).
    return sha256_hex(f"{doc_id}\x00{ordinal}\x00{text}")[:32]


@dataclass
class IngestReport:
    """Outcome of one ingestion run, for the CLI summary and the UI."""

    indexed: list[str] = field(default_factory=list)  # sources newly indexed or replaced
    unchanged: list[str] = field(default_factory=list)  # same content already indexed
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (source, source it duplicates)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) e.g. unsupported type
    removed: list[str] = field(default_factory=list)  # sources whose chunks were deleted
    # (old source, new source): moved/renamed files whose chunks were re-pointed, not re-embedded
    renamed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (source, note) of indexed files (LoadedDocument.notes)
    chunks_added: int = 0
    chunks_removed: int = 0

    @property
    def files_seen(self) -> int:
        return (
            len(self.indexed)
            + len(self.unchanged)
            + len(self.duplicates)
            + len(self.failed)
            + len(self.skipped)
            + len(self.renamed)
        )
