"""Split loaded documents into chunks sized with the embedding model's own tokenizer.

Splits at paragraph, then sentence boundaries (Chinese 。！？；and English .!?;), packs sentences
up to ``target_tokens`` with ``overlap_tokens`` of trailing sentences repeated, and cuts any single
over-long sentence at token boundaries. The final check re-tokenises every chunk exactly as the
embedder will see it (prefix and special tokens included): no chunk ever exceeds the model limit.

Markdown tables (``ingest.loaders.tables``) are split between rows, never inside one, and every
chunk that starts inside a table repeats its header, so a figure is never cut off from its column
labels. A spreadsheet's chunks also name the sheet rows they hold.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest.loaders.tables import is_separator_line, is_table_line
from ingest.settings import ChunkerSettings
from ingest.types import Chunk, LoadedDocument, Section, indexed_text, make_chunk_id

log = logging.getLogger(__name__)


class TokenCounter(Protocol):
    """What the chunker needs from the embedder (``ingest.embedding.Embedder`` provides it)."""

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str], kind: Literal["passage", "query"] = "passage") -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...

    def prefix_tokens(self, kind: Literal["passage", "query"] = "passage") -> int: ...


_PARAGRAPH_BREAK = re.compile(r"\n[ \t\u3000]*\n+")
# A sentence ends after CJK or ASCII terminal punctuation (plus closing quotes/brackets), or at a
# line break inside a paragraph (list items, table rows).
_SENTENCE_END = re.compile(
    r"""(?:[。！？；!?;…]+[”’"'」』）)\]]*"""  # CJK/ASCII terminators, any closing quotes
    r"""|\.(?=[”’"')\]]*\s)[”’"')\]]*"""  # an English full stop followed by whitespace
    r"""|\n)"""
)


@dataclass(frozen=True)
class _Unit:
    start: int  # character span within the section text
    end: int
    tokens: int
    table: int | None = None  # which Markdown table of the section this unit belongs to
    row: int | None = None  # the table's data row (0-based); None for its header


@dataclass(frozen=True)
class _Table:
    """A Markdown table inside a section's text: its header and separator lines, and its rows."""

    header_start: int
    header_end: int  # end of the separator line
    rows: list[tuple[int, int]]  # character span of each data row


@dataclass(frozen=True)
class _Piece:
    """A chunk before it is cut out: a span of the section, and the header of the table it starts
    inside of (repeated at its top), and the table's data rows it holds."""

    start: int
    end: int
    header: str = ""
    rows: tuple[int, int] | None = None  # first and last data row index held


class Chunker:
    def __init__(self, settings: ChunkerSettings, token_counter: TokenCounter) -> None:
        self.settings = settings
        self.counter = token_counter
        self._overhead: int | None = None

    @property
    def overhead(self) -> int:
        """Tokens the embedder adds around a passage (prefix, <s>, </s>)."""
        if self._overhead is None:
            self._overhead = self.counter.prefix_tokens("passage")
        return self._overhead

    @property
    def hard_limit(self) -> int:
        """Maximum text tokens of a chunk so the embedder's input fits the model."""
        limit = self.counter.max_tokens - self.overhead
        if limit < 8:
            raise ValueError(f"embedder limit {self.counter.max_tokens} leaves no room for text")
        return limit

    @property
    def target(self) -> int:
        return min(self.settings.target_tokens, self.hard_limit)

    # --- public -----------------------------------------------------------------------------------
    def chunk(self, doc: LoadedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in doc.sections:
            heading = self._fit_heading(" > ".join(section.heading_path))
            for text, tokens, rows in self._chunk_section(section, heading):
                ordinal = len(chunks)
                chunks.append(
                    Chunk(
                        chunk_id=make_chunk_id(doc.doc_id, ordinal, text),
                        doc_id=doc.doc_id,
                        source=doc.source,
                        text=text,
                        ordinal=ordinal,
                        page=section.page,
                        section=_with_rows(heading, section.row_numbers, rows),
                        token_count=tokens,
                    )
                )
        return chunks

    def split_text(self, text: str) -> list[str]:
        """Chunk a bare string (no document metadata)."""
        return [t for t, _, _ in self._chunk_section(Section(text=text), "")]

    # --- internals --------------------------------------------------------------------------------
    def _fit_heading(self, heading: str) -> str:
        """The heading path, its outer levels dropped while what is indexed of it (``indexed_text``)
        takes over half the model's input: the text keeps room, and every chunk can be made to fit.
        Only a very long path or a very small model loses any (e5: 512 tokens, paths cut to 120
        characters anyway)."""
        while heading:
            tokens = self.counter.count_tokens([indexed_text("", heading)], "passage")[0] - self.overhead
            if tokens <= self.counter.max_tokens // 2:
                break
            heading = heading.split(" > ", 1)[1] if " > " in heading else heading[len(heading) // 2 + 1 :]
        return heading

    def _chunk_section(self, section: Section, heading: str) -> list[tuple[str, int, tuple[int, int] | None]]:
        text = section.text
        tables = _find_tables(text)
        units = self._units(text, tables)
        if not units:
            return []
        pieces = self._pack(text, units, tables)
        pieces = [p for p in pieces if len(text[p.start : p.end].strip()) >= self.settings.min_chunk_chars]
        return self._enforce_limit(text, pieces, heading)

    def _units(self, text: str, tables: list[_Table]) -> list[_Unit]:
        """Sentences (character spans) with their token counts; long ones cut at token boundaries.
        A table's header and separator are one unit and each of its rows another: a row is never
        split at a full stop inside a cell."""
        spans: list[tuple[int, int, int | None, int | None]] = []  # (start, end, table, row)
        pos = 0
        for t, table in enumerate(tables):
            spans.extend((s, e, None, None) for s, e in _prose_sentences(text, pos, table.header_start))
            spans.append((table.header_start, table.header_end, t, None))
            spans.extend((s, e, t, r) for r, (s, e) in enumerate(table.rows))
            pos = table.rows[-1][1] if table.rows else table.header_end
        spans.extend((s, e, None, None) for s, e in _prose_sentences(text, pos, len(text)))
        if not spans:
            return []
        counts = self.counter.count_tokens([text[s:e] for s, e, _, _ in spans], "passage")
        units: list[_Unit] = []
        for (s, e, table_index, row), n in zip(spans, counts):
            n -= self.overhead
            if n <= self.target:
                units.append(_Unit(s, e, n, table_index, row))
            else:
                units.extend(
                    _Unit(u.start, u.end, u.tokens, table_index, row) for u in self._cut_by_tokens(text, s, e)
                )
        return units

    def _cut_by_tokens(self, text: str, start: int, end: int) -> list[_Unit]:
        offsets = self.counter.token_offsets(text[start:end])
        units = []
        step = self.target
        for i in range(0, len(offsets), step):
            group = offsets[i : i + step]
            s = start + group[0][0]
            e = start + group[-1][1] if i + step < len(offsets) else end
            if i == 0:
                s = start
            units.append(_Unit(s, e, len(group)))
        # Join the pieces seamlessly: each piece starts where the previous ended.
        return [
            _Unit(units[k - 1].end if k else u.start, u.end, u.tokens) for k, u in enumerate(units)
        ]

    def _pack(self, text: str, units: list[_Unit], tables: list[_Table]) -> list[_Piece]:
        """Greedy packing up to the target, repeating trailing sentences as overlap. A chunk that
        starts inside a table starts with the table's header (its tokens count towards the target);
        table rows are not repeated as overlap, and a header never ends a chunk on its own."""
        target, overlap = self.target, self.settings.overlap_tokens
        header_tokens = {u.table: u.tokens for u in units if u.table is not None and u.row is None}
        pieces: list[_Piece] = []
        current: list[_Unit] = []
        size = 0

        # A header longer than half a chunk (a very wide table) is not repeated: it would crowd out
        # the rows it labels.
        repeated = {t for t, n in header_tokens.items() if n <= target // 2}

        def close() -> None:
            first = current[0]
            header = ""
            if first.table in repeated and first.row is not None:
                table = tables[first.table]
                header = text[table.header_start : table.header_end]
            rows = [u.row for u in current if u.row is not None]
            pieces.append(_Piece(first.start, current[-1].end, header, (rows[0], rows[-1]) if rows else None))

        for unit in units:
            if current and size + unit.tokens > target:
                carried: list[_Unit] = []
                if current[-1].table is not None and current[-1].row is None and len(current) > 1:
                    carried = [current.pop()]  # a header whose rows do not fit: it opens the next chunk
                close()
                kept: list[_Unit] = []
                kept_size = 0
                if not carried:
                    for prev in reversed(current):
                        if prev.table is not None:
                            break
                        if kept_size + prev.tokens > overlap or kept_size + prev.tokens + unit.tokens > target:
                            break
                        kept.insert(0, prev)
                        kept_size += prev.tokens
                current = carried or kept
                size = sum(u.tokens for u in current)
                if not current and unit.table in repeated and unit.row is not None:
                    size = header_tokens[unit.table]
            current.append(unit)
            size += unit.tokens
        if current:
            close()
        return pieces

    def _enforce_limit(
        self, text: str, pieces: list[_Piece], heading: str
    ) -> list[tuple[str, int, tuple[int, int] | None]]:
        """Tokenise each chunk exactly as the embedder will (its heading path first: ``indexed_text``);
        split any that exceed the model limit (token counts of joined sentences can differ from the
        sum of their parts)."""
        out: list[tuple[int, str, int, tuple[int, int] | None]] = []  # (start, text, tokens, rows)
        pending = list(pieces)
        while pending:
            texts = [_piece_text(text, p) for p in pending]
            counts = self.counter.count_tokens([indexed_text(t, heading) for t in texts], "passage")
            retry: list[_Piece] = []
            for piece, chunk_text, n in zip(pending, texts, counts):
                if n <= self.counter.max_tokens:
                    out.append((piece.start, chunk_text, n, piece.rows))
                    continue
                log.debug("chunk of %d tokens over the limit %d: splitting", n, self.counter.max_tokens)
                s, e = piece.start, piece.end
                offsets = self.counter.token_offsets(text[s:e])
                mid = s + offsets[len(offsets) // 2][0] if len(offsets) > 1 else (s + e) // 2
                if mid <= s or mid >= e:
                    mid = (s + e) // 2
                if piece.header and len(piece.header) >= (e - s):
                    # Halving has left less text than the repeated header: the header is what
                    # does not fit, so these halves go without it.
                    piece = _Piece(s, e, "", piece.rows)
                retry.extend([_Piece(s, mid, piece.header, piece.rows), _Piece(mid, e, piece.header, piece.rows)])
            pending = retry
        out.sort(key=lambda item: item[0])
        return [(t, n, rows) for _, t, n, rows in out if t]


def _piece_text(text: str, piece: _Piece) -> str:
    body = text[piece.start : piece.end].strip()
    return f"{piece.header.strip()}\n{body}" if piece.header and body else body


def _with_rows(heading: str, row_numbers: tuple[int, ...], rows: tuple[int, int] | None) -> str:
    """The chunk's section label; a spreadsheet chunk adds the sheet rows it holds."""
    if not row_numbers or rows is None:
        return heading
    first, last = row_numbers[min(rows[0], len(row_numbers) - 1)], row_numbers[min(rows[1], len(row_numbers) - 1)]
    label = f"row {first}" if first == last else f"rows {first}-{last}"
    return f"{heading} > {label}" if heading else label


def _find_tables(text: str) -> list[_Table]:
    """Markdown tables (a header line, a separator line, rows) in ``text``, in order."""
    tables: list[_Table] = []
    lines: list[tuple[int, int]] = []  # (start, end) of each line, end without the newline
    pos = 0
    for line in text.split("\n"):
        lines.append((pos, pos + len(line)))
        pos += len(line) + 1
    i = 0
    while i + 1 < len(lines):
        head, sep = lines[i], lines[i + 1]
        if is_table_line(text[head[0] : head[1]]) and is_separator_line(text[sep[0] : sep[1]]):
            rows = []
            j = i + 2
            while j < len(lines) and is_table_line(text[lines[j][0] : lines[j][1]]):
                rows.append(lines[j])
                j += 1
            tables.append(_Table(head[0], sep[1], rows))
            i = j
        else:
            i += 1
    return tables


def _prose_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = start
    for para in _PARAGRAPH_BREAK.finditer(text, start, end):
        spans.extend(_sentences(text, pos, para.start()))
        pos = para.end()
    spans.extend(_sentences(text, pos, end))
    return spans


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.end() > pos:
            spans.append((pos, m.end()))
            pos = m.end()
    if pos < end:
        spans.append((pos, end))
    return [(s, e) for s, e in spans if text[s:e].strip()]
