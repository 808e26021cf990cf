"""A cited PDF page as a PNG with the cited passage highlighted.

Why: a citation says "p. 3", but the reader wants to *see* the passage where it sits. The chunk text
came from a text extractor (pypdf), so it rarely equals the page's text layer character for character:
line breaks, spaces, hyphenation at line ends, spaces between CJK characters and ligatures differ. The
page's characters (pdfplumber, in content-stream order like pypdf reads them) and the passage are both
reduced to their non-whitespace, non-hyphen, NFKC-casefolded characters, each page character keeping
its box; the passage is found there exactly, or else as its long matching blocks, so a partly
matching chunk still shows. The boxes of the matched characters become one rectangle per text line,
drawn translucent over the page rendered by PDFium.
"""
from __future__ import annotations

import io
import math
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pdfplumber
import pypdfium2 as pdfium
from PIL import Image, ImageDraw

__all__ = ["PagePreview", "PreviewError", "render_pdf_passage"]

HIGHLIGHT_RGBA = (255, 221, 0, 90)  # yellow, alpha ~0.35
MIN_BLOCK = 8  # shortest matching block (normalised characters) kept when the passage is not found whole
# A fuzzy match counts only if one block is this long or the blocks cover this share of the passage:
# short blocks alone are coincidences ("the product ").
CONFIDENT_BLOCK = 24
CONFIDENT_COVERAGE = 0.5
MAX_CANDIDATES = 64  # places of one MIN_BLOCK-gram of the passage on the page tried (repetitive pages)
_DROPPED = frozenset("-\u00ad\u2010\u2011")  # hyphens: line-end hyphenation is the extractors' main difference
# PDFium is not thread-safe: one render at a time in this process (a web server calls from threads).
_PDFIUM_LOCK = threading.Lock()

Box = tuple[float, float, float, float]  # x0, top, x1, bottom in PDF points, top-left origin


class PreviewError(ValueError):
    """The page cannot be shown: not a PDF, unreadable, or no such page. The message is for the user."""


@dataclass(frozen=True)
class PagePreview:
    png: bytes
    page: int  # 1-based
    highlighted: int  # rectangles drawn (0: the passage was not found on the page)
    width: int  # pixels
    height: int


def render_pdf_passage(
    path: Path, page: int, passage: str, *, scale: float = 1.5, max_pixels: int = 20_000_000
) -> PagePreview:
    """Render 1-based ``page`` of the PDF at ``path`` at ``scale`` (pixels per point; lowered so the
    image stays within ``max_pixels``) with ``passage`` highlighted where it is found on the page.
    Raises PreviewError for a missing, corrupt or non-PDF file and for a page out of range."""
    if not (scale > 0 and math.isfinite(scale)) or max_pixels < 1:
        raise PreviewError(f"invalid preview size: scale {scale}, max_pixels {max_pixels}")
    name = Path(path).name
    image, size = _render(Path(path), page, scale, max_pixels, name)
    area, chars = _text_layer(Path(path), page)
    crop = area or (0.0, 0.0, size[0], size[1])
    text, char_boxes = _page_text(chars)
    boxes = _line_boxes(char_boxes[i] for i in _match(_normalise(passage), text))
    rects = [
        (
            (x0 - crop[0]) * image.width / (crop[2] - crop[0]),
            (top - crop[1]) * image.height / (crop[3] - crop[1]),
            (x1 - crop[0]) * image.width / (crop[2] - crop[0]),
            (bottom - crop[1]) * image.height / (crop[3] - crop[1]),
        )
        for x0, top, x1, bottom in boxes
    ]
    if rects:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        for rect in rects:
            draw.rectangle(rect, fill=HIGHLIGHT_RGBA)
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return PagePreview(png=buf.getvalue(), page=page, highlighted=len(rects), width=image.width, height=image.height)


def _render(path: Path, page: int, scale: float, max_pixels: int, name: str) -> tuple[Image.Image, tuple[float, float]]:
    """The page as an RGB image, and its size in points."""
    if not path.is_file():
        raise PreviewError(f"{name}: no such file")
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            reason = "password-protected" if "password" in str(exc).lower() else "not a PDF, or corrupt"
            raise PreviewError(f"{name}: cannot open the PDF ({reason})") from None
        except Exception:
            raise PreviewError(f"{name}: cannot open the PDF (not a PDF, or corrupt)") from None
        try:
            count = len(document)
            if not 1 <= page <= count:
                raise PreviewError(f"{name}: page {page} is out of range (the PDF has {count} pages)")
            try:
                pdf_page = document[page - 1]
                try:
                    width, height = pdf_page.get_size()
                    scale = _fitting_scale(width, height, scale, max_pixels)
                    image = pdf_page.render(scale=scale).to_pil().convert("RGB")
                finally:
                    pdf_page.close()
            except Exception:
                raise PreviewError(f"{name}: page {page} cannot be rendered (damaged PDF)") from None
        finally:
            document.close()
    return image, (width, height)


def _fitting_scale(width: float, height: float, scale: float, max_pixels: int) -> float:
    """``scale``, or the largest one whose image (each side rounded up) has at most ``max_pixels``
    pixels, but never under one pixel on the shorter side."""
    w, h = max(width, 1.0), max(height, 1.0)
    if math.ceil(w * scale) * math.ceil(h * scale) <= max_pixels:
        return scale
    # (w*s + 1) * (h*s + 1) <= max_pixels, solved for s
    fitting = (-(w + h) + math.sqrt((w + h) ** 2 + 4 * w * h * (max_pixels - 1))) / (2 * w * h)
    return max(fitting, 1 / min(w, h))


def _text_layer(path: Path, page: int) -> tuple[Box | None, list[dict[str, Any]]]:
    """The area PDFium renders (the cropbox, in pdfplumber's top-left coordinates) and the page's
    characters; (None, []) if pdfplumber cannot read them: the page is still shown, unhighlighted."""
    try:
        with pdfplumber.open(path) as pdf:
            plumber_page = pdf.pages[page - 1]
            x0, top, x1, bottom = (float(v) for v in plumber_page.cropbox)
            chars: list[dict[str, Any]] = plumber_page.chars
    except Exception:
        return None, []
    return ((x0, top, x1, bottom) if x1 > x0 and bottom > top else None), chars


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not c.isspace() and c not in _DROPPED)


def _page_text(chars: Iterable[dict[str, Any]]) -> tuple[str, list[Box]]:
    """The page's normalised text in content order, and the box of the character behind each index."""
    parts: list[str] = []
    boxes: list[Box] = []
    seen: set[tuple[str, int, int]] = set()
    for char in chars:
        piece = _normalise(str(char.get("text", "")))
        box = (float(char["x0"]), float(char["top"]), float(char["x1"]), float(char["bottom"]))
        # The same glyph drawn twice at (nearly) one place is one character: "bold" by overprinting, a
        # shadow. (pdfplumber's dedupe_chars does this in seconds on a full page.)
        key = (piece, round(box[0]), round(box[1]))
        if piece and key not in seen:
            seen.add(key)
            parts.append(piece)
            boxes.extend([box] * len(piece))
    return "".join(parts), boxes


def _match(needle: str, text: str) -> list[int]:
    """Indices of ``text`` matching ``needle``: the whole of it, or else its long matching blocks."""
    at = text.find(needle)
    if at >= 0:
        return list(range(at, at + len(needle)))
    blocks = _blocks(needle, text)
    sizes = [size for _, size in blocks]
    if not sizes or (max(sizes) < CONFIDENT_BLOCK and sum(sizes) < CONFIDENT_COVERAGE * len(needle)):
        return []
    return sorted({j for start, size in blocks for j in range(start, start + size)})


def _blocks(needle: str, text: str) -> list[tuple[int, int]]:
    """(start in ``text``, size) of blocks of at least MIN_BLOCK characters shared with ``needle``, found
    greedily left to right through ``needle`` from an index of ``text``'s MIN_BLOCK-grams: linear time
    (difflib takes seconds on a full page), preferring the longest block, then the one nearest the last."""
    k = MIN_BLOCK
    index: dict[str, list[int]] = {}
    for j in range(len(text) - k + 1):
        index.setdefault(text[j : j + k], []).append(j)
    blocks: list[tuple[int, int]] = []
    i, last_end = 0, 0
    while i <= len(needle) - k:
        gram = needle[i : i + k]
        starts = index.get(gram)
        if not starts:
            i += 1
            continue
        continuing = [last_end] if text[last_end : last_end + k] == gram else []
        best = (0, 0, 0)  # (size, -distance from the last block, start)
        for j in [*continuing, *starts[:MAX_CANDIDATES]]:
            size = k
            while i + size < len(needle) and j + size < len(text) and needle[i + size] == text[j + size]:
                size += 1
            best = max(best, (size, -abs(j - last_end), j))
        size, _, start = best
        blocks.append((start, size))
        i, last_end = i + size, start + size
    return blocks


def _line_boxes(boxes: Iterable[Box]) -> list[Box]:
    """Merge character boxes, in content order, into one box per run on one line: a new box starts
    where the text leaves the current line's height or jumps backwards or far ahead (next line, column)."""
    merged: list[list[float]] = []
    for x0, top, x1, bottom in boxes:
        if merged:
            cur = merged[-1]
            height = max(cur[3] - cur[1], bottom - top, 1.0)
            same_line = cur[1] <= (top + bottom) / 2 <= cur[3] and cur[2] - height <= x0 <= cur[2] + 3 * height
            if same_line:
                cur[0], cur[1], cur[2], cur[3] = min(cur[0], x0), min(cur[1], top), max(cur[2], x1), max(cur[3], bottom)
                continue
        merged.append([x0, top, x1, bottom])
    return [_box(b) for b in merged]


def _box(values: Sequence[float]) -> Box:
    return (values[0], values[1], values[2], values[3])
