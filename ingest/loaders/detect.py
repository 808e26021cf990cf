"""Content sniffing, text decoding and the small helpers every loader shares.

``LoadError`` lives here (not in ``__init__``) so the format modules can import it without an
import cycle; ``ingest.loaders`` re-exports it.
"""
from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
import zipfile

from ingest.settings import LoaderSettings
from ingest.text_cleaning import remove_unsafe_characters
from ingest.types import Section, source_label

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".pdf", ".docx", ".xlsx", ".pptx", ".csv", ".eml", ".md", ".markdown", ".html", ".htm", ".txt"}
    | IMAGE_EXTENSIONS
)
_TEXT_TYPES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".csv": "csv",
    ".eml": "email",
}
# Office Open XML files are ZIPs; the part that makes each one what it is, and how it is named.
_OFFICE_PARTS = {"word/document.xml": "docx", "xl/workbook.xml": "xlsx", "ppt/presentation.xml": "pptx"}
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
# Refused by name whatever they hold: an archive is many documents (and the classic bomb carrier).
ARCHIVE_EXTENSIONS: frozenset[str] = frozenset(
    {".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz", ".lzma", ".z",
     ".cab", ".iso", ".jar", ".war", ".apk"}
)
_MB = 1024 * 1024

# How much of a text file may be control/unassigned characters before we call it binary. Real
# text has almost none; binary that happens to decode (GB18030 accepts many byte pairs) has lots.
_MAX_JUNK_SHARE = 0.05


class LoadError(Exception):
    """A file could not be turned into text. ``reason`` is a one-line message for the user."""

    def __init__(self, reason: str) -> None:
        # One line: reasons end up in CLI tables and UI toasts; parser details can be multi-line.
        reason = " ".join(str(reason).split()) or "unknown error"
        if len(reason) > 300:
            reason = reason[:297] + "..."
        super().__init__(reason)
        self.reason = reason


def detail(exc: BaseException) -> str:
    """A short description of a parser exception for a LoadError reason.

    A MemoryError is re-raised instead: running out of memory says nothing about the file being
    corrupt, and the isolated parser (``DocumentLoader``) reports it as a memory-cap refusal."""
    if isinstance(exc, MemoryError):
        raise exc
    # Object reprs ("<_io.BytesIO object at 0x7f...>") carry a memory address: noise to a reader, and
    # a reason that differs between two parses of the same file.
    msg = _ADDRESS_RE.sub("", str(exc)).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")


# --- names -------------------------------------------------------------------------------------


def base_name(name: str) -> str:
    """Last component of a path or upload name, handling both separators; never touches disk."""
    return re.split(r"[\\/]", name)[-1]


def extension(name: str) -> str:
    """Lower-cased extension with the dot ('' when there is none; '.bashrc' has none)."""
    base = base_name(name)
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def stem(name: str) -> str:
    """The file name without its extension, and without the content-hash suffix an upload is stored
    with (``uploads/prices-e478f918ec3e.xlsx`` -> ``prices``): the fallback title of a document."""
    base = source_label(base_name(name))
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


# --- content sniffing ----------------------------------------------------------------------------

_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office (.doc/.xls/.ppt) file; save it as .docx/.xlsx/.pptx"),
    *_IMAGE_MAGIC,
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "a Java class or Mach-O executable"),
    (b"\x00asm", "a WebAssembly module"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"MSCF\x00\x00\x00\x00", "a CAB archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"{\\rtf", "an RTF document"),
)


def binary_kind(head: bytes) -> str | None:
    """What a known binary format is, from the first bytes (at least 512 for tar), else None."""
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    # Short magics that text can also start with: require what follows them in the real format.
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "a bzip2 archive"
    # "MZ" alone is also how a sentence can start; a DOS/PE header has NULs right after it.
    if head.startswith(b"MZ") and b"\x00" in head[2:64]:
        return "a Windows executable"
    if head[257:262] == b"ustar":
        return "a tar archive"
    return None


def _is_pdf(data: bytes, ext: str) -> bool:
    head = data[:1024]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n\f\x00").startswith(b"%PDF-"):
        return True
    # Readers accept a %PDF- header anywhere in the first KiB; only trust that for a .pdf name so a
    # text file that merely mentions "%PDF-" is not taken for one.
    return ext == ".pdf" and b"%PDF-" in head


def image_kind(head: bytes) -> str | None:
    """'a PNG image' / 'a JPEG image' / 'a TIFF image' from the first bytes, else None."""
    for magic, what in _IMAGE_MAGIC:
        if head.startswith(magic):
            return what
    return None


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def detect_kind(data: bytes, name: str, limits: LoaderSettings | None = None) -> str:
    """Which loader handles ``data``: 'pdf' | 'docx' | 'xlsx' | 'pptx' | 'image' | 'markdown' |
    'html' | 'text' | 'csv' | 'email'.

    The allow-list is checked by content: PDF and Office files by their structure (content wins over
    the extension: a PDF named .txt is a PDF, a workbook named .docx a workbook), images by their
    magic number under an image name, text formats by extension after ruling out known binary
    formats (executables, images, archives). Archives are refused by name and by content, and an
    Office file (a ZIP) whose declared sizes look like a decompression bomb is refused before any
    member is read. Raises LoadError for empty, binary, unsupported or corrupt input. Text files are
    only checked for other binary content later, when decoded (see ``decode_text``).
    """
    limits = limits or LoaderSettings()
    ext = extension(name)
    if not data:
        raise LoadError("empty file")
    if ext in ARCHIVE_EXTENSIONS:
        raise LoadError(f"archives are not accepted ('{ext}'); upload the documents inside it one by one")
    if _is_pdf(data, ext):
        if ext != ".pdf":
            logger.warning("%s: extension %r but content is a PDF; loading it as PDF", name, ext)
        return "pdf"
    if _is_zip(data):
        kind = _check_office_zip(data, ext, limits)
        if ext != f".{kind}":
            logger.warning("%s: extension %r but content is a .%s; loading it as such", name, ext, kind)
        return kind
    if ext not in SUPPORTED_EXTENSIONS:
        shown = ext or "(no extension)"
        raise LoadError(f"unsupported file type '{shown}'")
    if ext in IMAGE_EXTENSIONS:
        if image_kind(data[:16]):
            return "image"
        what = binary_kind(data[:1024])
        raise LoadError(f"not a valid image (not PNG, JPEG or TIFF{': ' + what if what else ''})")
    what = binary_kind(data[:1024])
    if what:
        raise LoadError(f"binary content in a {ext} file ({what})")
    # The binary formats are strict: loading a broken .pdf/.docx as "text" would index garbage.
    if ext == ".pdf":
        raise LoadError("not a valid PDF (no %PDF- header)")
    if ext in (".docx", ".xlsx", ".pptx"):
        raise LoadError(f"not a valid {ext} (not a ZIP archive)")
    return _TEXT_TYPES[ext]


def _check_office_zip(data: bytes, ext: str, limits: LoaderSettings) -> str:
    """A ZIP must be a Word, Excel or PowerPoint file within the limits, judged from its central
    directory only; returns 'docx', 'xlsx' or 'pptx'.

    Declared sizes are enough: Python's zipfile never inflates a member past its declared size
    (a member that lies fails its CRC check instead), so they bound what the parsers will read.
    """
    # The member count from the end-of-central-directory record first: listing a million members
    # (a 50 MB ZIP can declare that many) would itself cost hundreds of MB.
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if eocd != -1 and len(data) >= eocd + 12:
        declared = int.from_bytes(data[eocd + 10 : eocd + 12], "little")
        if declared != 0xFFFF and declared > limits.max_zip_members:  # 0xFFFF: ZIP64, counted below
            raise LoadError(
                f"refused: the Office file holds {declared} parts (limit {limits.max_zip_members}); a ZIP bomb?"
            )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = zf.infolist()
    except Exception as exc:  # BadZipFile, but also ValueError/EOFError on mangled headers
        what = ext if ext in (".docx", ".xlsx", ".pptx") else "Office document"
        raise LoadError(f"not a valid {what} (corrupt ZIP archive): {detail(exc)}") from exc
    names = {m.filename for m in members}
    kinds = [kind for part, kind in _OFFICE_PARTS.items() if part in names]
    if not kinds:
        raise LoadError(
            "a ZIP archive that is not an Office document (no word/document.xml, xl/workbook.xml or "
            "ppt/presentation.xml); archives are not accepted"
        )
    label = f".{kinds[0]}"
    if len(members) > limits.max_zip_members:
        raise LoadError(
            f"refused: the {label} holds {len(members)} parts (limit {limits.max_zip_members}); a ZIP bomb?"
        )
    total = sum(m.file_size for m in members)
    if total > limits.max_unzipped_mb * _MB:
        raise LoadError(
            f"refused: the {label} unpacks to {total / _MB:,.0f} MB (limit {limits.max_unzipped_mb:g} MB); "
            "a decompression bomb?"
        )
    for m in members:
        # Small parts are ignored: a 2 KB part of zeros "compresses" 200:1 and costs nothing.
        if m.file_size > _MB and m.file_size > limits.max_compression_ratio * max(m.compress_size, 1):
            ratio = m.file_size / max(m.compress_size, 1)
            raise LoadError(
                f"refused: a part of the {label} expands {ratio:,.0f}:1 (limit {limits.max_compression_ratio:g}:1); "
                "a decompression bomb?"
            )
    return kinds[0]


# --- text decoding ------------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    # utf-32 before utf-16: the UTF-32-LE BOM starts with the UTF-16-LE one.
    (b"\xff\xfe\x00\x00", "utf-32", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "utf-8-sig"),
    (b"\xff\xfe", "utf-16", "utf-16"),
    (b"\xfe\xff", "utf-16", "utf-16"),
)


def _junk_share(text: str) -> float:
    if not text:
        return 0.0
    junk = 0
    for ch in text:
        if ch in "\t\n\r\f\v":
            continue
        cat = unicodedata.category(ch)
        # Cc: controls, Cn: unassigned, Co: private use (GB18030 maps stray byte pairs there),
        # Cs: surrogates; U+FFFD would mean someone already decoded lossily.
        if cat in ("Cc", "Cn", "Co", "Cs") or ch == "\ufffd":
            junk += 1
    return junk / len(text)


def _looks_binary(text: str) -> bool:
    return "\x00" in text or _junk_share(text) > _MAX_JUNK_SHARE


def _gb_label(data: bytes) -> str:
    # GB18030 decodes everything GBK does, identically; report the narrower name when it fits.
    try:
        data.decode("gbk")
        return "gbk"
    except UnicodeDecodeError:
        return "gb18030"


def decode_text(data: bytes, name: str, declared: str | None = None) -> tuple[str, str]:
    """Decode text bytes, returning ``(text, encoding)``; newlines normalised to '\\n'.

    Order: a BOM, then ``declared`` (e.g. an HTML <meta charset>), then strict UTF-8, then
    GB18030 (a superset of GBK/GB2312, reported as 'gbk' when the bytes are plain GBK).
    Raises LoadError for binary content (NUL bytes, many control characters, undecodable).
    """
    ext = extension(name) or "(no extension)"
    binary = LoadError(f"binary content in a {ext} file")
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                shown = codec.upper().replace("-SIG", "")
                raise LoadError(
                    f"binary content in a {ext} file (starts with a {shown} byte-order mark but is not valid {shown})"
                ) from exc
            if _looks_binary(text):
                raise binary
            return normalize_newlines(text), label
    # No BOM: NUL bytes never occur in UTF-8/GBK text, only in binary (or BOM-less UTF-16).
    if b"\x00" in data:
        raise binary
    candidates: list[tuple[str, str, bool]] = []  # (codec, label, came from the document)
    if declared:
        found = _codec_for(declared)
        if found:
            candidates.append((*found, True))
        else:
            logger.warning("%s: unknown declared charset %r; detecting instead", name, declared)
    candidates += [("utf-8", "utf-8", False), ("gb18030", "", False)]
    for codec, label, was_declared in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            if was_declared:
                logger.warning("%s: content is not valid %s as declared; detecting instead", name, label)
            continue
        if _looks_binary(text):
            raise binary
        return normalize_newlines(text), label or _gb_label(data)
    raise binary


def _codec_for(declared: str) -> tuple[str, str] | None:
    """Python codec and reported label for a declared charset name, or None if unknown."""
    label = declared.strip().lower()
    if label in ("gb2312", "gbk", "gb18030", "x-gbk", "cp936", "euc-cn"):
        # Pages labelled GB2312 routinely contain GBK-only characters; browsers decode as GBK too.
        return "gb18030", label
    if label.startswith(("utf-16", "utf-32")):
        return None  # a <meta> that says UTF-16 in ASCII-compatible bytes is wrong by definition
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None  # 'base64', 'rot13' and friends are codecs but not charsets
    return info.name, label


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """Normalise extracted text: '\\n' newlines, no stray controls, invisible characters or lone
    surrogates (the same set a question loses: ``ingest.text_cleaning``), no trailing spaces, at
    most one blank line in a row."""
    text = normalize_newlines(text).replace("\f", "\n").replace("\u00a0", " ")
    # Removed, not spaced: a control byte inside extracted text is debris, not a word break. Lone
    # surrogates (from broken PDF ToUnicode maps) go too: they would crash every later .encode("utf-8").
    text = remove_unsafe_characters(text, control_replacement="")
    # rstrip per line, not re.sub(r"[ \t]+\n"): that regex is quadratic on a long run of spaces.
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def no_text_error(what: str = "") -> LoadError:
    return LoadError("no extractable text" + (f" ({what})" if what else ""))


# --- section assembly for structured formats ----------------------------------------------------


class SectionBuilder:
    """Collects text blocks under a heading stack; each heading starts a new Section.

    Heading text is kept in ``heading_path``, not repeated in the section text. A heading that is
    followed directly by another heading produces no section of its own.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._sections: list[Section] = []
        self._headings: list[str] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self.flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._headings.append(text)

    def add(self, text: str, tight: bool = False) -> None:
        """Append a block; ``tight`` joins it to the previous block with one newline (list items)."""
        if not text or not text.strip():
            return
        if tight and self._blocks:
            self._blocks[-1] += "\n" + text
        else:
            self._blocks.append(text)

    def flush(self) -> None:
        text = clean_text("\n\n".join(self._blocks))
        self._blocks = []
        if text:
            self._sections.append(Section(text=text, heading_path=self.path))

    def build(self) -> tuple[Section, ...]:
        self.flush()
        if not self._sections and self._headings:
            # A document that is nothing but headings still has text worth indexing.
            return (Section(text="\n".join(self._headings)),)
        return tuple(self._sections)
