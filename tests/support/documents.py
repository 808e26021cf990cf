"""Documents built in memory for the loader, upload and fuzz tests (python-docx, fpdf2)."""
from __future__ import annotations

import functools
import io
import zipfile

import docx
from fpdf import FPDF


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
