"""Documents built in memory for the loader, upload and fuzz tests (python-docx, fpdf2)."""
from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import docx
from fpdf import FPDF

if TYPE_CHECKING:
    from PIL import Image, ImageFont


def make_pdf(pages: list[str | None], title: str | None = None) -> bytes:
    """One page per entry; None makes a page with a drawing but no text (like a scan)."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text is None:
            pdf.rect(20, 20, 100, 60, style="F")
            continue
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def make_docx() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Ops Manual"
    d.add_heading("Ops Manual", level=0)
    d.add_paragraph("Intro paragraph.")
    d.add_heading("Deploy", level=1)
    d.add_paragraph("Before the table.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Step", "Owner"), ("Build", "CI")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("After the table.")
    d.add_heading("Rollback", level=2)
    d.add_paragraph("Revert the release tag.")
    d.add_heading("Monitoring", level=1)
    d.add_paragraph("Watch the dashboards.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@functools.cache
def valid_pdf() -> bytes:
    return make_pdf(["First page about alpha.", "Second page about beta.", "Third page about gamma."])


@functools.cache
def valid_docx() -> bytes:
    return make_docx()


MARKDOWN = """\
---
title: ignored front matter
tags: [a, b]
---

Preface before any heading.

# Guide

Some *emphasis* and a [link](https://example.com) and `code`.

## Install

1. Download
2. Run the **installer**

| Key | Value |
| --- | --- |
| port | 8080 |

### Details

```bash
make install
```

## Usage

Use it.
"""


HTML = """\
<!doctype html>
<html><head><title>Team Page</title><style>.x{color:red}</style>
<script>var secret = 1;</script></head>
<body>
<nav>Home | About</nav>
<h1>Team</h1><p>We build   things.<br>Second line.</p>
<h2>Members</h2>
<table><tr><th>Name</th><th>Role</th></tr><tr><td>Ana</td><td>Lead</td></tr></table>
<ul><li>one</li><li>two</li></ul>
<h2>Contact</h2><p>Mail us.</p><noscript>enable js</noscript>
<footer>copyright</footer>
</body></html>
"""


PE_HEADER = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\x00\x00" + bytes(64)


def docx_bomb(unpacked_mb: int = 50) -> bytes:
    """A ZIP that passes for a .docx (it has word/document.xml) whose document part unpacks to
    ``unpacked_mb`` MB of zeros (~1000:1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w") as fh:
            block = bytes(1024 * 1024)
            for _ in range(unpacked_mb):
                fh.write(block)
    return buf.getvalue()


# Two small Markdown documents, one per language, for the unit layer (indexer and service over fakes).
HANDBOOK_ZH = """# 员工手册

## 年假

入职满一年的正式员工每年享有 5 天带薪年假。入职满五年的正式员工每年享有 18 天带薪年假。

## 报销

差旅报销需在出差结束后七天内提交。
""".encode()

FAQ_EN = b"""# Product FAQ

## Uploads

The maximum upload size is 200 MB per file. Larger files are refused before they are read.

## Languages

Beacon answers questions in Chinese and English.
"""


# --- the formats teams keep beyond prose: spreadsheets, slides, e-mail (built here, no fixtures) -------

CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"  # Debian fonts-wqy-microhei (make browser)


def make_xlsx(rows: list[tuple[object, ...]], sheet: str = "Sheet1", title: str = "") -> bytes:
    """A one-sheet workbook (openpyxl) holding ``rows`` from A1."""
    import openpyxl

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    if title:
        book.properties.title = title
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def make_pptx(slides: list[tuple[str, str, str]]) -> bytes:
    """A deck (python-pptx): one 'Title and Content' slide per (title, body, speaker notes)."""
    import pptx

    deck = pptx.Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def make_eml(subject: str, html_body: str, attachments: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """An RFC 822 message with an HTML body and file attachments (name, bytes)."""
    import mimetypes
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "Zhang San <zhang@example.cn>"
    msg["To"] = "team@example.cn"
    msg["Date"] = "Mon, 04 Mar 2024 10:00:00 +0800"
    msg.set_content(html_body, subtype="html")
    for name, data in attachments:
        maintype, subtype = (mimetypes.guess_type(name)[0] or "application/octet-stream").split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def wrap_lines(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """One paragraph as lines no wider than ``width`` pixels in ``font``: English breaks at spaces,
    Chinese between any two characters."""
    import re

    lines, current = [], ""
    for token in re.findall(r"[A-Za-z0-9.,;:'’()%/-]+|\s|.", text):
        if font.getlength(current + token) > width and current.strip():
            lines.append(current.strip())
            current = "" if token.isspace() else token
        else:
            current += token
    if current.strip():
        lines.append(current.strip())
    return lines


def render_page(lines: list[str], size: int = 32, width: int = 1400) -> Image.Image:
    """A white page image of ``lines`` in the CJK font (black, ``size`` px, ~300 dpi-like)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(CJK_FONT, size)
    height = 80 + int(size * 1.6) * len(lines)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((60, 40 + int(size * 1.6) * i), line, font=font, fill=0)
    return page


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def make_scanned_pdf(pages: list[list[str]]) -> bytes:
    """A PDF whose pages are only images of text (no text layer), like a scan."""
    images = [render_page(lines).convert("RGB") for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=200.0)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` 1-bit pixels but holds only a few rows of data: a few
    hundred bytes, which a decoder would try to inflate into width * height / 8 bytes (an image bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress((b"\x00" + bytes((width + 7) // 8)) * 8)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# --- OCR accuracy: 1 - edit distance / reference length ---------------------------------------------


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def char_accuracy(reference: str, found: str) -> float:
    """Over characters, whitespace removed (Chinese: Tesseract spaces its characters)."""
    import re

    ref, got = re.sub(r"\s", "", reference), re.sub(r"\s", "", found)
    return 1 - levenshtein(ref, got) / len(ref)


def word_accuracy(reference: str, found: str) -> float:
    """Over whitespace-separated words (English)."""
    ref = reference.split()
    return 1 - levenshtein(ref, found.split()) / len(ref)
