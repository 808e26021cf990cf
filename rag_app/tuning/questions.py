"""What to train on: a sample of the indexed chunks and, for each, questions it answers.

Two writers:
* ``LLMQuestionWriter``: the configured LLM writes questions in the chunk's language (the
  e5-mistral / GPL recipe). Real questions, but about 5-10 s per chunk with the packaged 0.5B
  model on 2 CPU cores.
* ``SentenceQueryWriter``: the inverse cloze task (Lee et al., 2019): one sentence of the chunk is
  the query and the rest of the chunk its positive. No LLM, milliseconds per chunk; the queries are
  statements rather than questions.
"""
from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ingest.sentences import cut_out, question_sized, split_sentences
from rag_app.answering.language import detect_language
from rag_app.answering.prompt import defuse

if TYPE_CHECKING:
    from rag_app.llm.base import LLMBackend
    from rag_app.retrieval.protocols import SearchableKnowledgeBase

log = logging.getLogger(__name__)

MIN_CHUNK_CHARS = 80  # headings and stubs make questions about nothing
PROMPT_CHUNK_CHARS = 1200  # the start of a long chunk is enough to ask about, and prompt reading is slow


@dataclass(frozen=True)
class ChunkSample:
    chunk_id: str
    doc_id: str
    text: str


@dataclass(frozen=True)
class GeneratedQuery:
    query: str
    chunk_id: str
    doc_id: str
    positive: str  # the passage the query is about (ICT: the chunk without the query sentence)
    generator: str


class QueryWriter(Protocol):
    name: str

    def write(self, chunk: ChunkSample) -> list[GeneratedQuery]: ...


def sample_chunks(kb: SearchableKnowledgeBase, n: int, seed: int) -> list[ChunkSample]:
    """Up to ``n`` chunks drawn at random from the knowledge base, skipping near-empty ones, at
    most two per document while others remain (a long manual must not crowd out the rest)."""
    assert kb.keyword_index is not None and kb.vectors is not None, "call kb.warm_up() first"
    ids = sorted(kb.keyword_index.ids())
    random.Random(seed).shuffle(ids)
    per_doc: dict[str, int] = {}
    out: list[ChunkSample] = []
    overflow: list[ChunkSample] = []  # third and later chunks of a document: used only if short
    for start in range(0, len(ids), 1000):
        if len(out) >= n:
            break
        part = ids[start : start + 1000]
        fetched = kb.vectors.fetch(part)
        for cid in part:
            if cid not in fetched:
                continue
            hit, _ = fetched[cid]
            if len(hit.text.strip()) < MIN_CHUNK_CHARS:
                continue
            per_doc[hit.doc_id] = per_doc.get(hit.doc_id, 0) + 1
            (out if per_doc[hit.doc_id] <= 2 else overflow).append(ChunkSample(cid, hit.doc_id, hit.text))
    return (out + overflow)[:n]


_PROMPTS = {
    "en": (
        "You write search questions for a document retrieval system.",
        "Passage:\n<<<\n{text}\n>>>\n\nWrite {n} different questions that a user might ask and that this passage"
        " answers. Each must make sense on its own, without the passage. Write one question per line,"
        " in English, with no numbering and nothing else.",
    ),
    "zh": (
        "你为文档检索系统编写搜索问题。",
        "段落：\n<<<\n{text}\n>>>\n\n请写出{n}个用户可能会问、且这段文字能够回答的不同问题。每个问题都必须"
        "脱离这段文字也能看懂。每行一个问题，用中文，不要编号，不要写别的内容。",
    ),
}
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)、:：]|[Qq]\d*[:：.]|问题\s*\d*[:：])\s*")


def parse_questions(reply: str, passage: str, limit: int) -> list[str]:
    """Questions from an LLM reply: one per line, numbering stripped, no copies of the passage,
    no duplicates, no fragments."""
    out: list[str] = []
    for line in reply.splitlines():
        q = _NUMBERING.sub("", line).strip().strip('"“”').strip()
        if len(q) < 6 or len(q) > 300 or q in out:
            continue
        if q in passage:  # a sentence copied from the passage is not a question about it
            continue
        out.append(q)
        if len(out) >= limit:
            break
    return out


class LLMQuestionWriter:
    name = "llm"

    def __init__(self, llm: LLMBackend, per_chunk: int = 1, max_new_tokens: int = 96) -> None:
        self.llm = llm
        self.per_chunk = per_chunk
        self.max_new_tokens = max_new_tokens

    def write(self, chunk: ChunkSample) -> list[GeneratedQuery]:
        lang = detect_language(chunk.text)
        system, user = _PROMPTS[lang]
        # defuse: a chunk is untrusted text and must not open chat turns of its own.
        text = defuse(chunk.text[:PROMPT_CHUNK_CHARS])
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": user.format(text=text, n=self.per_chunk)},
        ]
        reply = self.llm.generate(messages, max_new_tokens=self.max_new_tokens * self.per_chunk)  # type: ignore[arg-type]
        questions = parse_questions(reply, chunk.text, self.per_chunk)
        if lang == "zh":  # the small model sometimes answers in English: keep only Chinese questions
            questions = [q for q in questions if detect_language(q) == "zh"]
        return [GeneratedQuery(q, chunk.chunk_id, chunk.doc_id, chunk.text, self.name) for q in questions]


class SentenceQueryWriter:
    """Inverse cloze task: a mid-length sentence becomes the query and is removed from the
    positive, so the model must match meaning and context, not copy a string."""

    name = "sentence"

    def __init__(self, per_chunk: int = 1, seed: int = 0) -> None:
        self.per_chunk = per_chunk
        self.rng = random.Random(seed)

    def write(self, chunk: ChunkSample) -> list[GeneratedQuery]:
        sentences = split_sentences(chunk.text)
        if len(sentences) < 3:
            return []
        picks = [i for i, s in enumerate(sentences) if question_sized(s)]
        self.rng.shuffle(picks)
        # cut_out keeps the spacing: with re-joined sentences ("。 " in Chinese) the model learned
        # that mark instead of relevance (on CMRC the training loss fell to 0, no held-out gain).
        return [
            GeneratedQuery(sentences[i], chunk.chunk_id, chunk.doc_id, cut_out(chunk.text, sentences[i]), self.name)
            for i in picks[: self.per_chunk]
        ]


def generate_queries(
    chunks: Sequence[ChunkSample],
    writer: QueryWriter,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[GeneratedQuery]:
    """Queries for every chunk; a chunk whose generation fails is skipped with a warning."""
    out: list[GeneratedQuery] = []
    for i, chunk in enumerate(chunks, start=1):
        if should_stop is not None and should_stop():
            log.warning("question generation stopped at its time budget after %d of %d chunks", i - 1, len(chunks))
            break
        try:
            out.extend(writer.write(chunk))
        except Exception as exc:  # one bad reply must not lose the hour already spent
            log.warning("no question for chunk %s: %s", chunk.chunk_id, exc)
        if progress:
            progress(i, len(chunks))
    return out
