"""In-domain probe questions made from a knowledge base's own chunks, without labels.

Two kinds (``calibration.probe_writer``):

* ``sentences`` (inverse cloze, no LLM, milliseconds): a sentence is taken out of its chunk and
  becomes the question; the rest of the chunk is its evidence. Answering the probe means finding
  the chunk *without* that sentence, so a probe is not solved by matching its own words (the chunk
  still in the index is replaced by the edited one when the probe is scored,
  ``collect.probe_candidates``).
* ``llm``: the configured LLM writes a question each sampled chunk answers; the chunk as indexed
  is its evidence. Closer to what people ask, seconds per question on a CPU.

A third kind is made from the first, for knowledge bases whose users ask in the documents' own
words (``question_style``): a *window*, 60% of the probe's sentence left in its chunk (an
extractive question).

The same probe with its whole document removed is a "hole": a question on the knowledge base's
topic whose evidence is gone, which the cutoff should refuse.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ingest.sentences import cut_out, is_cjk_text, question_sized, split_sentences, text_length
from ingest.types import Chunk

log = logging.getLogger(__name__)

QuestionWriter = Callable[[Chunk], "str | None"]  # one question the chunk answers, or None
MIN_WRITTEN_CHARS = 80  # headings and stubs make questions about nothing


@dataclass(frozen=True)
class Probe:
    probe_id: str
    question: str  # the sentence taken out, or the written question
    chunk: Chunk  # where it came from
    # The evidence the probe must find: the chunk's text without the sentence, or None when the
    # chunk as indexed is the evidence (a written question).
    context: str | None


def probe_candidates(chunk: Chunk) -> list[tuple[str, str]]:
    """Every (sentence, context) pair one chunk offers: the context must be at least as long as
    the sentence (and 8 words or characters) to be evidence for it."""
    out = []
    for sentence in split_sentences(chunk.text):
        if not question_sized(sentence):
            continue
        context = cut_out(chunk.text, sentence)
        if text_length(context) >= max(8, text_length(sentence)):
            out.append((sentence, context))
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


def written_probes(
    chunks: Iterable[Chunk], limit: int, write: QuestionWriter, seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Probe]:
    """Up to ``limit`` questions written for distinct chunks (seeded order, stubs skipped). A chunk
    whose question cannot be written (an LLM error, an empty reply) is skipped with a warning."""
    usable = [c for c in sorted(chunks, key=lambda c: c.chunk_id) if len(c.text.strip()) >= MIN_WRITTEN_CHARS]
    random.Random(seed).shuffle(usable)
    probes: list[Probe] = []
    for i, chunk in enumerate(usable[:limit], start=1):
        try:
            question = write(chunk)
        except Exception as exc:  # one bad reply must not lose the questions already written
            log.warning("no probe question for chunk %s: %s", chunk.chunk_id, exc)
            question = None
        if question:
            probes.append(Probe(f"probe-{len(probes)}", question, chunk, None))
        if progress:
            progress("writing probe questions", i, min(limit, len(usable)))
    return probes


WINDOW_SHARE = 0.6  # of a sentence's words (characters for Chinese)


def sentence_window(sentence: str, rng: random.Random) -> str:
    """A contiguous 60% of the sentence (characters for Chinese, words otherwise; at least 6
    characters or 4 words)."""
    if is_cjk_text(sentence):
        n = len(sentence)
        w = min(n, max(6, int(WINDOW_SHARE * n)))
        start = rng.randint(0, n - w)
        return sentence[start:start + w]
    words = sentence.split()
    w = min(len(words), max(4, int(WINDOW_SHARE * len(words))))
    start = rng.randint(0, len(words) - w)
    return " ".join(words[start:start + w])


def window_questions(probes: Iterable[Probe], seed: int = 0) -> dict[str, str]:
    """Each probe's window question (seeded), by probe id; the chunk as indexed is its evidence."""
    rng = random.Random(seed)
    return {p.probe_id: sentence_window(p.question, rng) for p in probes}
