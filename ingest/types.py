"""Typed records passed between the ingestion stages."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Section:
    """A contiguous piece of a loaded document with where it came from."""

    text: str
    page: int | None = None  # 1-based page number (PDF)
    heading_path: tuple[str, ...] = ()  # headings above this text (Markdown, HTML, DOCX)

    @property
    def location(self) -> str:
        """Human-readable location: 'p. 3' or 'Intro > Setup' or ''."""
        parts = []
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.heading_path:
            parts.append(" > ".join(self.heading_path))
        return ", ".join(parts)


@dataclass(frozen=True)
class LoadedDocument:
    """A file turned into text sections. ``doc_id`` is the sha256 of the file's bytes."""

    source: str  # the path or upload name the user gave
    doc_id: str
    file_type: str  # "pdf" | "docx" | "markdown" | "html" | "text"
    sections: tuple[Section, ...]
    title: str = ""
    encoding: str | None = None  # detected text encoding, where it applies

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit. ``chunk_id`` is a content hash: same document and text, same id."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    ordinal: int  # position of the chunk within its document, from 0
    page: int | None = None
    section: str = ""  # heading path joined with ' > '
    token_count: int = 0  # model tokens of the embedder's input (prefix and special tokens included)

    @property
    def location(self) -> str:
        parts = []
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.section:
            parts.append(self.section)
        return ", ".join(parts)


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
