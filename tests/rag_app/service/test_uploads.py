"""The upload store's naming: client names made safe, content-addressed stored names, the name shown."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.types import sha256_hex
from rag_app.service.uploads import (
    UploadStore,
    display_name,
    read_upload,
    sanitize_filename,
    upload_size,
)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.PDF", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\年度 报告.docx", "年度 报告.docx"),
        ("notes.md.", "notes.md"),  # Windows drops trailing dots
        (".bashrc", "bashrc"),  # no hidden files
        ("-rf.txt", "rf.txt"),  # nothing that reads as an option
        ("CON.md", "_CON.md"),  # Windows device names
        ("a\x00b\nc.txt", "abc.txt"),  # control characters
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # the RTL override that disguises an extension
        ("a;b|c$d.md", "a_b_c_d.md"),  # shell metacharacters
        ("archive.tar.gz", "archive.tar.gz"),
        ("no extension", "no extension"),
        ("weird.ext!!", "weird.ext"),
        ("", "upload"),
        ("...", "upload"),
    ],
)
def test_client_names_become_safe_base_names(name: str, safe: str) -> None:
    assert sanitize_filename(name) == safe
    assert sanitize_filename(safe) == safe  # idempotent


def test_a_long_chinese_name_is_cut_on_a_character_within_the_byte_limit() -> None:
    safe = sanitize_filename("年" * 200 + ".md")
    stem = safe.removesuffix(".md")
    assert safe.endswith(".md") and set(stem) == {"年"} and len(stem.encode("utf-8")) <= 120


def test_stored_names_are_content_addressed(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    data, other = b"# Notes\n\nSome text.\n", b"# Notes\n\nOther text.\n"
    path = store.save("My Notes.MD", data)
    assert path == store.root / f"My Notes-{sha256_hex(data)[:12]}.md" and path.read_bytes() == data
    assert store.save("My Notes.MD", data) == path  # an identical re-upload lands on the same path
    assert store.save("My Notes.MD", other) != path  # two "notes" never overwrite each other
    assert store.path_for("../../../etc/passwd", sha256_hex(data)).parent == store.root
    assert display_name(str(path)) == "My Notes.md"  # shown without the hash suffix
    assert store.contains(path) and not store.contains(tmp_path / "elsewhere.md")


def test_remove_only_touches_the_uploads_folder(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    outside = tmp_path / "keep.md"
    outside.write_text("mine")
    assert not store.remove(outside) and outside.exists()
    assert not store.remove(store.root / ".." / "keep.md") and outside.exists()
    path = store.save("a.md", b"x")
    assert store.remove(path) and not path.exists()


def test_an_upload_reads_alike_as_bytes_a_file_or_an_open_file(tmp_path: Path) -> None:
    data = b"0123456789"
    file = tmp_path / "upload.bin"
    file.write_bytes(data)
    handle = io.BytesIO(data)
    for source in (data, file, handle):
        assert upload_size(source) == 10 and read_upload(source, 4) == b"0123" and read_upload(source, 99) == data
    assert handle.tell() == 0  # left where a reader expects it
