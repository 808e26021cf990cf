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
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.sentences import cut_out, question_sized, split_sentences, text_length
from ingest.types import Chunk


@dataclass(frozen=True)
class Probe:
    probe_id: str
    question: str  # the sentence taken out
    chunk: Chunk  # where it came from
    context: str  # the chunk's text without the sentence: the evidence the probe must find


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
