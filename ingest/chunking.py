"""Split loaded documents into chunks sized with the embedding model's own tokenizer.

Splits at paragraph, then sentence boundaries (Chinese 。！？；and English .!?;), packs sentences
up to ``target_tokens`` with ``overlap_tokens`` of trailing sentences repeated, and cuts any single
over-long sentence at token boundaries. The final check re-tokenises every chunk exactly as the
embedder will see it (prefix and special tokens included): no chunk ever exceeds the model limit.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ingest.settings import ChunkerSettings
from ingest.types import Chunk, LoadedDocument, Section, make_chunk_id

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
            for text, tokens in self._chunk_section(section):
                ordinal = len(chunks)
                chunks.append(
                    Chunk(
                        chunk_id=make_chunk_id(doc.doc_id, ordinal, text),
                        doc_id=doc.doc_id,
                        source=doc.source,
                        text=text,
                        ordinal=ordinal,
                        page=section.page,
                        section=" > ".join(section.heading_path),
                        token_count=tokens,
                    )
                )
        return chunks

    def split_text(self, text: str) -> list[str]:
        """Chunk a bare string (no document metadata)."""
        return [t for t, _ in self._chunk_section(Section(text=text))]

    # --- internals --------------------------------------------------------------------------------
    def _chunk_section(self, section: Section) -> list[tuple[str, int]]:
        text = section.text
        units = self._units(text)
        if not units:
            return []
        spans = self._pack(units)
        pieces = [(s, e) for s, e in spans if len(text[s:e].strip()) >= self.settings.min_chunk_chars]
        return self._enforce_limit(text, pieces)

    def _units(self, text: str) -> list[_Unit]:
        """Sentences (character spans) with their token counts; long ones cut at token boundaries."""
        spans: list[tuple[int, int]] = []
        pos = 0
        for para in _PARAGRAPH_BREAK.finditer(text):
            spans.extend(_sentences(text, pos, para.start()))
            pos = para.end()
        spans.extend(_sentences(text, pos, len(text)))
        if not spans:
            return []
        counts = self.counter.count_tokens([text[s:e] for s, e in spans], "passage")
        units: list[_Unit] = []
        for (s, e), n in zip(spans, counts):
            n -= self.overhead
            if n <= self.target:
                units.append(_Unit(s, e, n))
            else:
                units.extend(self._cut_by_tokens(text, s, e))
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

    def _pack(self, units: list[_Unit]) -> list[tuple[int, int]]:
        """Greedy packing up to the target, repeating trailing sentences as overlap."""
        target, overlap = self.target, self.settings.overlap_tokens
        spans: list[tuple[int, int]] = []
        current: list[_Unit] = []
        size = 0
        for unit in units:
            if current and size + unit.tokens > target:
                spans.append((current[0].start, current[-1].end))
                kept: list[_Unit] = []
                kept_size = 0
                for prev in reversed(current):
                    if kept_size + prev.tokens > overlap or kept_size + prev.tokens + unit.tokens > target:
                        break
                    kept.insert(0, prev)
                    kept_size += prev.tokens
                current, size = kept, kept_size
            current.append(unit)
            size += unit.tokens
        if current:
            spans.append((current[0].start, current[-1].end))
        return spans

    def _enforce_limit(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[str, int]]:
        """Tokenise each chunk exactly as the embedder will; split any that exceed the model limit
        (token counts of joined sentences can differ from the sum of their parts)."""
        out: list[tuple[int, str, int]] = []  # (start, text, tokens)
        pending = list(spans)
        while pending:
            texts = [text[s:e].strip() for s, e in pending]
            counts = self.counter.count_tokens(texts, "passage")
            retry: list[tuple[int, int]] = []
            for (s, e), chunk_text, n in zip(pending, texts, counts):
                if n <= self.counter.max_tokens:
                    out.append((s, chunk_text, n))
                    continue
                log.debug("chunk of %d tokens over the limit %d: splitting", n, self.counter.max_tokens)
                offsets = self.counter.token_offsets(text[s:e])
                mid = s + offsets[len(offsets) // 2][0] if len(offsets) > 1 else (s + e) // 2
                if mid <= s or mid >= e:
                    mid = (s + e) // 2
                retry.extend([(s, mid), (mid, e)])
            pending = retry
        out.sort(key=lambda item: item[0])
        return [(t, n) for _, t, n in out if t]


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
