"""Tables as Markdown: the one table layout every loader writes and the chunker understands.

A table is a header line, a separator line and one line per row (``| a | b |``). The chunker
(``ingest.chunking``) keeps rows whole and repeats the header and separator at the top of every chunk
that starts inside a table, so a number always travels with its column labels.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_SEPARATOR_CELL = re.compile(r"^\s*:?-{3,}:?\s*$")


def _cell(value: object) -> str:
    # One line per row: line breaks inside a cell become spaces, and a literal pipe is escaped so it
    # cannot open a column of its own.
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[object]], header_rows: int = 1) -> str:
    """``rows`` as a Markdown table; the first ``header_rows`` rows are joined into the header
    (a two-line header such as a merged group label over unit labels reads "Price / CNY").
    Rows are padded to the widest one; empty rows are dropped. '' when nothing is left."""
    cleaned = [[_cell(v) for v in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    width = max(len(row) for row in cleaned)
    cleaned = [row + [""] * (width - len(row)) for row in cleaned]
    header_rows = max(1, min(header_rows, len(cleaned)))
    header = [
        " / ".join(_dedupe([row[col] for row in cleaned[:header_rows] if row[col]])) for col in range(width)
    ]
    body = cleaned[header_rows:]
    lines = [_line(header), _line(["---"] * width)]
    lines += [_line(row) for row in body]
    return "\n".join(lines)


def _dedupe(parts: list[str]) -> list[str]:
    # A merged header cell read once per row it spans would otherwise read "Price / Price".
    out: list[str] = []
    for part in parts:
        if not out or out[-1] != part:
            out.append(part)
    return out


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def is_table_line(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= 2 and stripped.startswith("|") and stripped.endswith("|")


def is_separator_line(line: str) -> bool:
    if not is_table_line(line):
        return False
    cells = line.strip()[1:-1].split("|")
    return all(_SEPARATOR_CELL.match(cell) for cell in cells)


def table_cells(line: str) -> list[str]:
    """The cells of a table line, stripped, escaped pipes read back."""
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def tables_as_rows(text: str) -> str:
    """``text`` with each Markdown table written one data row per line, every cell named by its
    column ("Car park: Brennock; Monthly: £85; Annual: £760"); other lines unchanged. A small model
    reading a grid picks a neighbouring row's or column's figure; a row that names its columns
    leaves less to read across."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and is_table_line(lines[i]) and is_separator_line(lines[i + 1]):
            header = table_cells(lines[i])
            i += 2
            while i < len(lines) and is_table_line(lines[i]):
                cells = table_cells(lines[i])
                named = [f"{h}: {c}" if h else c for h, c in zip(header, cells) if c]
                named += [c for c in cells[len(header):] if c]  # a row wider than its header
                out.append("; ".join(named))
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)
