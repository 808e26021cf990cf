"""PPTX loader: python-pptx, one Section per slide (text frames, tables, speaker notes)."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pptx
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.shapes.group import GroupShape

from ingest.loaders.detect import LoadError, clean_text, detail, no_text_error, stem
from ingest.loaders.tables import markdown_table
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

NOTES_LABEL = "Speaker notes:"
# Slide chrome repeated on every slide; the title is kept in heading_path instead of the text.
_CHROME = {PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.HEADER}
# What PowerPoint and other writers put in docProps/core.xml when nobody set a title.
_PLACEHOLDER_TITLES = {"powerpoint presentation", "powerpoint 演示文稿", "presentation"}


def _squash(text: str) -> str:
    return " ".join(text.split())


def _frame_text(frame: Any) -> str:
    # python-pptx writes a line break (a:br) inside a paragraph as a vertical tab; clean_text would
    # drop it as a control character and glue the two lines together.
    lines = [paragraph.text.replace("\v", "\n") for paragraph in frame.paragraphs]
    return "\n".join(line for line in lines if line.strip())


def _position(shape: Any) -> tuple[int, int]:
    try:
        top, left = shape.top, shape.left
    except Exception:  # no xfrm and nothing to inherit it from
        top, left = None, None
    return (top or 0, left or 0)


def _placeholder_type(shape: Any) -> Any:
    if not getattr(shape, "is_placeholder", False):
        return None
    try:
        return shape.placeholder_format.type
    except Exception:  # a placeholder element without a usable ph
        return None


def _in_reading_order(shapes: Any) -> Iterator[Any]:
    """Shapes top-to-bottom, then left-to-right; a group's shapes are read together, in their own
    order, where the group sits (their offsets are in the group's coordinate space)."""
    for shape in sorted(shapes, key=_position):
        if isinstance(shape, GroupShape):
            yield from _in_reading_order(shape.shapes)
        else:
            yield shape


def _table_rows(shape: Any) -> list[list[str]]:
    return [[cell.text.replace("\v", "\n") for cell in row.cells] for row in shape.table.rows]


def _slide_title(slide: Any) -> tuple[str, int | None]:
    """The slide's title placeholder text and shape id ('' and None without one)."""
    title_shape = slide.shapes.title
    if title_shape is None or not title_shape.has_text_frame:
        return "", None
    return _squash(title_shape.text_frame.text), title_shape.shape_id


def _notes_text(slide: Any) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return _frame_text(frame).strip() if frame is not None else ""


def _slide_text(slide: Any, title_id: int | None) -> str:
    blocks: list[str] = []
    for shape in _in_reading_order(slide.shapes):
        if title_id is not None and shape.shape_id == title_id:
            continue  # the title is the section's heading_path, not part of its text
        if _placeholder_type(shape) in _CHROME:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            blocks.append(markdown_table(_table_rows(shape)))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            blocks.append(_frame_text(shape.text_frame))
    notes = _notes_text(slide)
    if notes:
        blocks.append(f"{NOTES_LABEL} {notes}")
    return clean_text("\n\n".join(block for block in blocks if block.strip()))


def load_pptx(data: bytes, name: str) -> LoadedDocument:
    """One Section per slide with text: ``page`` is the slide number, ``heading_path`` its title.

    Text frames are read in reading order (groups included), tables become Markdown tables and the
    speaker notes end the section as a 'Speaker notes:' paragraph."""
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
    except Exception as exc:  # PackageNotFoundError, ValueError (a .docx), KeyError, BadZipFile, ...
        raise LoadError(f"not a valid .pptx (corrupt or not a PowerPoint presentation): {detail(exc)}") from exc

    sections: list[Section] = []
    first_title = ""
    for number, slide in enumerate(slides, start=1):
        try:
            title, title_id = _slide_title(slide)
            text = _slide_text(slide, title_id)
        except RecursionError:
            logger.warning("%s: slide %d nested too deeply to read; skipped", name, number)
            continue
        except Exception as exc:  # malformed slide XML that parsed but breaks python-pptx's model
            logger.warning("%s: slide %d unreadable (%s); skipped", name, number, detail(exc))
            continue
        if number == 1:
            first_title = title
        heading_path = (title,) if title else ()
        if text:
            sections.append(Section(text=text, page=number, heading_path=heading_path))
        elif title:
            # A section-divider slide: its title is the only text it has, and worth finding.
            sections.append(Section(text=title, page=number, heading_path=heading_path))

    if not sections:
        raise no_text_error("the presentation has no text")
    try:
        title = _squash(presentation.core_properties.title or "")
    except Exception:  # a broken docProps/core.xml should not lose the presentation
        title = ""
    if title.lower() in _PLACEHOLDER_TITLES:
        title = ""
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="pptx",
        sections=tuple(sections),
        title=title or first_title or stem(name),
    )
