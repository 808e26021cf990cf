"""In-domain probe questions made from a knowledge base's own chunks, without labels or an LLM.

Inverse cloze: a sentence is taken out of its chunk and becomes the question; the rest of the
chunk is its evidence. Answering the probe means finding the chunk *without* that sentence, so a
probe is not solved by matching its own words (the chunk still in the index is replaced by the
edited one when the probe is scored, ``collect.probe_candidates``). The same probe with its
whole document removed is a "hole": a question on the knowledge base's topic whose evidence is
gone, which the cutoff should refuse.
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.types import Chunk
from rag_app.answering.language import cjk_share

# Sentence ends: CJK full stops, or latin ones followed by whitespace; line breaks always.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?])|(?<=[.;])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Probe:
    probe_id: str
    question: str  # the sentence taken out
    chunk: Chunk  # where it came from
    context: str  # the chunk's text without the sentence: the evidence the probe must find


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _size(text: str) -> int:
    """Characters for CJK text, words otherwise: how long a sentence "reads"."""
    return len(re.sub(r"\s+", "", text)) if cjk_share(text) > 0.3 else len(_WORD.findall(text))


def _question_like(sentence: str) -> bool:
    """Long enough to ask something, short enough to be one question, not a table row or a title."""
    cjk = cjk_share(sentence) > 0.3
    n = _size(sentence)
    lo, hi = (10, 80) if cjk else (6, 40)
    letters = sum(ch.isalpha() for ch in sentence)
    return lo <= n <= hi and letters >= 0.5 * len(sentence.replace(" ", ""))


def _context_ok(context: str, sentence: str) -> bool:
    """Enough left of the chunk to be evidence: at least as long as the sentence, and 8 units."""
    n = _size(context)
    return n >= max(8, _size(sentence))


def probe_candidates(chunk: Chunk) -> list[tuple[str, str]]:
    """Every (sentence, context) pair one chunk offers."""
    parts = sentences(chunk.text)
    out = []
    for s in parts:
        if not _question_like(s):
            continue
        context = chunk.text.replace(s, " ", 1)
        context = " ".join(context.split())
        if _context_ok(context, s):
            out.append((s, context))
    return out


def make_probes(chunks: Iterable[Chunk], limit: int, seed: int = 0) -> list[Probe]:
    """Up to ``limit`` probes, as many chunks as possible contributing one each first (a small
    knowledge base then gives a second and third sentence per chunk). Seeded."""
    rng = random.Random(seed)
    by_chunk = []
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        pairs = probe_candidates(chunk)
        rng.shuffle(pairs)
        if pairs:
            by_chunk.append((chunk, pairs))
    rng.shuffle(by_chunk)
    probes: list[Probe] = []
    seen: set[str] = set()
    round_ = 0
    while len(probes) < limit and any(len(p) > round_ for _, p in by_chunk):
        for chunk, pairs in by_chunk:
            if round_ < len(pairs) and len(probes) < limit:
                question, context = pairs[round_]
                if question in seen:  # the same sentence in two chunks (overlap, duplicates): once
                    continue
                seen.add(question)
                probes.append(Probe(f"probe-{len(probes)}", question, chunk, context))
        round_ += 1
    return probes
