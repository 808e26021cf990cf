"""Uploaded files on disk: client names made safe, content-addressed storage, and reading an upload.

The upload store is the only owner of file naming: a client-supplied name never becomes a path.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import IO

from ingest.files import atomic_write_bytes
from ingest.types import sha256_hex, source_label

_UNSAFE_CHARS = re.compile(r"[^\w.\-()+ ]+", re.UNICODE)
# UTF-8 bytes, not characters: 80 CJK characters are 240 bytes, and with "-<hash>.<ext>" a stored
# name must stay under the 255-byte limit of most file systems.
_MAX_NAME_BYTES = 120
# Device names Windows reserves whatever the extension ("CON.md"); harmless here, but the stored
# uploads folder may be copied or served to Windows machines.
_WINDOWS_RESERVED = re.compile(r"(?:con|prn|aux|nul|com[0-9]|lpt[0-9])", re.I)
HEAD_BYTES = 1024  # what content sniffing needs before a file is read in full

# What an upload arrives as: the bytes, a temp file holding them (Gradio), or an open binary file (the API).
UploadData = bytes | Path | IO[bytes]
# (client file name, its data)
UploadInput = tuple[str, UploadData]


def sanitize_filename(name: str) -> str:
    """A safe base name from a client-supplied file name: no directories, no control, format or
    shell characters, no leading dot or dash, no Windows device name, at most ``_MAX_NAME_BYTES``
    of UTF-8 stem, a lower-case ASCII extension. Never empty."""
    # Clients may send full paths with either separator ("C:\\Users\\me\\a.pdf", "../../etc/passwd").
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name or ""))[-1]
    # Category C: controls (NUL, newlines), format characters (RTL overrides that disguise
    # "txt.exe" as "exe.txt"), surrogates, private use, unassigned.
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = base.strip(" .")  # Windows drops trailing dots and spaces, so "a.md." would be "a.md"
    stem, dot, ext = base.rpartition(".")
    ext = re.sub(r"[^0-9a-z]", "", ext.lower())[:10] if dot else ""
    if not ext:  # no usable extension: a dot left in the stem must not read as one next time
        stem = base.replace(".", "_")
    stem = _UNSAFE_CHARS.sub("_", stem).strip(" ._-")
    stem = stem.encode("utf-8")[:_MAX_NAME_BYTES].decode("utf-8", "ignore").strip(" ._-") or "upload"
    if _WINDOWS_RESERVED.fullmatch(stem.split(".")[0].rstrip(" ")):
        stem = f"_{stem}"
    return f"{stem}.{ext}" if ext else stem


def display_name(source: str) -> str:
    """The file name shown for a source; uploads without their content-hash suffix."""
    return source_label(source)


class UploadStore:
    """Uploaded files under ``<data_dir>/uploads/`` as ``<sanitised stem>-<content hash>.<ext>``.

    The content hash makes names unique (two "notes.md" never overwrite each other) and makes an
    identical re-upload land on the same path, so the indexer sees it as "unchanged".
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path_for(self, name: str, sha256: str) -> Path:
        safe = sanitize_filename(name)
        stem, dot, ext = safe.rpartition(".")
        if not dot:
            stem, ext = safe, ""
        digest = sha256[:12]
        return self.root / (f"{stem}-{digest}.{ext}" if ext else f"{stem}-{digest}")

    def save(self, name: str, data: bytes, sha256: str | None = None) -> Path:
        """Store ``data`` (whose digest the caller may already know) and return its path."""
        path = self.path_for(name, sha256 or sha256_hex(data))
        if path.is_file() and path.stat().st_size == len(data):
            return path  # same content hash: already stored
        atomic_write_bytes(path, data, fsync=False)  # a half-written file is never indexed
        return path

    def contains(self, source: str | Path) -> bool:
        try:
            return Path(source).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False

    def remove(self, source: str | Path) -> bool:
        """Delete a stored upload; refuses anything outside the uploads folder."""
        if not self.contains(source):
            return False
        Path(source).resolve().unlink(missing_ok=True)
        return True


def upload_size(data: UploadData) -> int:
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, (str, Path)):
        return Path(data).stat().st_size
    data.seek(0, os.SEEK_END)
    size = data.tell()
    data.seek(0)
    return size


def read_upload(data: UploadData, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of an upload."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data[:limit])
    if isinstance(data, (str, Path)):
        with Path(data).open("rb") as fh:
            return fh.read(limit)
    data.seek(0)
    out = data.read(limit)
    data.seek(0)
    return out
