"""Plain-text loader (.txt): encoding detection, one Section per file."""
from __future__ import annotations

from ingest.loaders.detect import clean_text, decode_text, no_text_error, stem
from ingest.types import LoadedDocument, Section, sha256_hex


def load_text(data: bytes, name: str) -> LoadedDocument:
    """Decode UTF-8 (with or without BOM), UTF-16/32 with BOM or GB18030/GBK text.

    One Section for the whole file: the chunker splits paragraphs, and plain text has no
    structure we could trust for headings.
    """
    text, encoding = decode_text(data, name)
    text = clean_text(text)
    if not text:
        raise no_text_error("the file is blank")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="text",
        sections=(Section(text=text),),
        title=stem(name),
        encoding=encoding,
    )
