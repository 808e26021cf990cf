"""Question -> (standalone query) -> hybrid retrieval -> refusal or a streamed, cited LLM answer."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

from rag_app.config import AnswerSettings, Settings
from rag_app.llm.base import ChatMessage, LLMBackend, LLMUnavailableError, approx_token_count

from .language import Language, detect_language
from .prompt import NumberedSource, Prompt, build_prompt, build_rewrite_messages, clean_rewrite
from .question import BoundedQuestion, bound_question, clean_question

if TYPE_CHECKING:
    from rag_app.knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)

# [1]  [1, 2]  [1,2]  [1-3]  【1】  【1，2】  [1、2]: one bracket holding numbers, lists or ranges.
_CITATION_RE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*(?:[,，、;；]|[-–~])\s*\d{1,3})*)\s*[\]】]")
_NUM_SPLIT_RE = re.compile(r"\s*[,，、;；]\s*")
_RANGE_RE = re.compile(r"^(\d+)\s*[-–~]\s*(\d+)$")
_MAX_RANGE = 20  # "[1-999]" is not a citation
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
# An answer saying the documents don't cover it must not get a citation pinned on it.
_DONT_KNOW_RE = re.compile(
    r"don['’]t know|do not know|not (?:mention|say|contain|provide|specif)|no information|cannot answer|"
    r"不知道|没有相关|未提及|没有提到|没有提供|无法回答|不清楚",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Citation:
    """A ``[n]`` in the answer resolved to the exact chunk that was quoted as source n.

    ``inferred``: the model cited nothing and the app attributed the answer to this source (the one
    that contains the answer's terms and numbers); the marker was appended to the answer.
    """

    number: int
    source: NumberedSource
    inferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**self.source.to_dict(), "inferred": self.inferred}


@dataclass(frozen=True)
class QueryEvent:
    """The query sent to retrieval: the question itself, or its standalone rewrite."""

    query: str
    question: str
    rewritten: bool
    language: Language
    truncated: bool = False  # the question was cut to answer.max_question_tokens
    type: str = "query"

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "question": self.question,
            "rewritten": self.rewritten,
            "language": self.language,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class SourcesEvent:
    """The numbered sources quoted to the LLM (empty: no evidence, a refusal follows)."""

    sources: list[NumberedSource]
    note: str = ""  # why there is no evidence, when there is none
    type: str = "sources"

    def to_dict(self) -> dict[str, Any]:
        return {"sources": [s.to_dict() for s in self.sources], "note": self.note}


@dataclass(frozen=True)
class DeltaEvent:
    text: str
    type: str = "delta"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True)
class FinalEvent:
    """The last event of a successful stream: the whole answer and what it cites."""

    answer: str
    question: str
    query: str
    language: Language
    sources: list[NumberedSource]
    citations: list[Citation]  # in order of first mention, one per number
    cited_sources: list[str]  # distinct source documents cited, in order of first mention
    refused: bool  # no evidence: the configured refusal, the LLM was not called
    note: str = ""
    dropped_sources: int = 0  # retrieved chunks left out for the context budget
    timings: dict[str, float] = field(default_factory=dict)  # seconds since the question arrived
    question_truncated: bool = False  # only the first answer.max_question_tokens tokens were used
    type: str = "final"

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "question": self.question,
            "query": self.query,
            "language": self.language,
            "refused": self.refused,
            "note": self.note,
            "citations": [c.to_dict() for c in self.citations],
            "cited_sources": self.cited_sources,
            "sources": [s.to_dict() for s in self.sources],
            "dropped_sources": self.dropped_sources,
            "timings": self.timings,
            "question_truncated": self.question_truncated,
        }


ErrorReason = Literal["empty_question", "search_failed", "llm_unavailable", "generation_failed"]


@dataclass(frozen=True)
class ErrorEvent:
    """The last event of a failed stream (LLM unreachable, store error): a message for the user.

    ``reason`` tells the caller whose fault it is: ``empty_question`` is the client's (HTTP 422),
    the others the server's or its dependencies' (HTTP 503)."""

    message: str
    question: str = ""
    reason: ErrorReason = "generation_failed"
    type: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "question": self.question, "reason": self.reason}


AnswerEvent = Union[QueryEvent, SourcesEvent, DeltaEvent, FinalEvent, ErrorEvent]
History = Sequence[Mapping[str, Any]]


# --------------------------------------------------------------------------------------------------
# Citations and history
# --------------------------------------------------------------------------------------------------


def parse_citation_numbers(text: str) -> list[int]:
    """Citation numbers in order of first mention: ``[1]``, ``[1, 2]``, ``[2-3]``, ``【1】``, ``【1，2】``."""
    seen: dict[int, None] = {}
    for match in _CITATION_RE.finditer(text):
        for part in _NUM_SPLIT_RE.split(match.group(1).strip()):
            rng = _RANGE_RE.match(part)
            if rng:
                a, b = int(rng.group(1)), int(rng.group(2))
                if a <= b and b - a < _MAX_RANGE:
                    seen.update(dict.fromkeys(range(a, b + 1)))
            elif part.isdigit():
                seen[int(part)] = None
    return list(seen)


def map_citations(text: str, sources: Sequence[NumberedSource]) -> list[Citation]:
    """Resolve ``[n]`` markers to the quoted sources; numbers out of range are ignored."""
    by_number = {s.number: s for s in sources}
    return [Citation(n, by_number[n]) for n in parse_citation_numbers(text) if n in by_number]


def infer_citation(
    answer: str,
    sources: Sequence[NumberedSource],
    tokenize: Callable[[str], list[str]],
    min_support: float,
) -> Citation | None:
    """The source that supports an uncited answer, or None when none clearly does.

    Support = the share of the answer's distinct terms (the BM25 tokenizer's: jieba words, stemmed
    English, stopwords dropped) that occur in the source; every number in the answer must also occur
    in it (a hallucinated figure must not look supported). Ties go to the better-ranked source.
    """
    if not answer.strip() or _DONT_KNOW_RE.search(answer):
        return None
    terms = set(tokenize(answer))
    if len(terms) < 2:
        return None
    numbers = set(_NUMBER_RE.findall(answer))
    best: tuple[float, NumberedSource] | None = None
    for s in sources:
        if any(n not in s.chunk.text for n in numbers):
            continue
        support = len(terms & set(tokenize(s.chunk.text))) / len(terms)
        if support >= min_support and (best is None or support > best[0]):
            best = (support, s)
    return Citation(best[1].number, best[1], inferred=True) if best else None


def _text_of(content: Any) -> str:
    # Gradio 6 chat messages carry content blocks ([{"type": "text", "text": ...}]); API clients send str.
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Sequence):
        return "".join(_text_of(part) for part in content)
    return ""


def normalise_history(history: History | None, max_turns: int) -> list[ChatMessage]:
    """User/assistant text turns only, the last ``max_turns`` question-answer pairs."""
    out: list[ChatMessage] = []
    for m in history or []:
        role = m.get("role") if isinstance(m, Mapping) else None
        if role not in ("user", "assistant"):
            continue
        text = clean_question(_text_of(m.get("content")))  # the same hygiene as the question itself
        if text:
            out.append(ChatMessage(role=role, content=text))  # type: ignore[typeddict-item]
    return out[-2 * max_turns :] if max_turns > 0 else []


# --------------------------------------------------------------------------------------------------
# The answerer
# --------------------------------------------------------------------------------------------------


class Answerer:
    """Answers questions from a knowledge base with an LLM, streaming :data:`AnswerEvent` objects.

    ``llm`` is a backend or a zero-argument factory: with a factory the backend is only built on the
    first question that needs it (refusals never do), so the app starts without loading a model.
    A stream ends with exactly one :class:`FinalEvent` or :class:`ErrorEvent`.
    """

    def __init__(
        self,
        kb: "KnowledgeBase",
        llm: LLMBackend | Callable[[], LLMBackend],
        settings: AnswerSettings | Settings | None = None,
        *,
        top_k: int | None = None,
    ) -> None:
        self.kb = kb
        if isinstance(settings, Settings):
            settings = settings.answer
        self.settings: AnswerSettings = settings or kb.settings.answer
        self.top_k = top_k
        self._llm: LLMBackend | None = llm if isinstance(llm, LLMBackend) else None
        self._llm_factory = None if isinstance(llm, LLMBackend) else llm
        self._llm_lock = threading.Lock()

    # --- LLM ---------------------------------------------------------------------------------------
    @property
    def llm_built(self) -> bool:
        return self._llm is not None

    def get_llm(self) -> LLMBackend:
        """The backend, built on first use. Construction failures become :class:`LLMUnavailableError`."""
        if self._llm is None:
            with self._llm_lock:
                if self._llm is None:
                    assert self._llm_factory is not None
                    try:
                        self._llm = self._llm_factory()
                    except LLMUnavailableError:
                        raise
                    except Exception as exc:  # e.g. llama-cpp-python missing, unknown backend
                        raise LLMUnavailableError(f"The LLM could not be set up: {exc}") from exc
        return self._llm

    def prepare_question(self, question: str | None) -> BoundedQuestion | None:
        """The question cleaned (:func:`clean_question`) and cut to ``answer.max_question_tokens``
        embedder tokens, or None when nothing is left to ask. What retrieval and the prompt get."""
        text = clean_question(question)
        if not text:
            return None
        embedder = self.kb.embedder
        # Never more than the embedder takes once its query prefix and special tokens are added.
        room = embedder.max_tokens - embedder.prefix_tokens("query")
        return bound_question(text, embedder.token_offsets, max(1, min(self.settings.max_question_tokens, room)))

    def refusal(self, language: Language) -> str:
        return self.settings.refusal_zh if language == "zh" else self.settings.refusal_en

    # --- steps -------------------------------------------------------------------------------------
    def rewrite(self, question: str, history: Sequence[ChatMessage]) -> str:
        """A standalone version of a follow-up question (one short, non-streamed LLM call)."""
        llm = self.get_llm()
        messages = build_rewrite_messages(question, history)
        raw = llm.generate(messages, max_new_tokens=self.settings.rewrite_max_tokens, stop=["\n\n"])
        return clean_rewrite(raw, question)

    def _context_budget(self, llm: LLMBackend, question: str) -> int:
        # The configured budget, but never more than the model's window leaves after the rules,
        # the question and the answer (a small local context must not overflow).
        llm_settings = getattr(llm, "settings", None)
        answer_tokens = int(getattr(llm_settings, "max_new_tokens", 512) or 512)
        room = llm.context_window - answer_tokens - approx_token_count(question) - 400
        return max(64, min(self.settings.context_tokens, room))

    # --- main entry --------------------------------------------------------------------------------
    def stream(self, question: str, history: History | None = None) -> Iterator[AnswerEvent]:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        prepared = self.prepare_question(question)
        if prepared is None:
            yield ErrorEvent("Please enter a question.", question="", reason="empty_question")
            return
        q, truncated = prepared.text, prepared.truncated
        language = detect_language(q)
        turns = normalise_history(history, self.settings.max_history_turns)

        query = q
        if turns and self.settings.rewrite_followups:
            try:
                # The rewrite is model output: the same cleaning and bound as a typed question.
                rewritten = self.prepare_question(self.rewrite(q, turns))
                query = rewritten.text if rewritten is not None else q
            except Exception as exc:  # rewriting is an optimisation: fall back to the raw question
                log.warning("follow-up rewrite failed, searching with the question as asked: %s", exc)
                query = q
            timings["rewrite_s"] = round(time.perf_counter() - t0, 3)
        yield QueryEvent(query=query, question=q, rewritten=query != q, language=language, truncated=truncated)

        try:
            assert self.kb.retriever is not None, "knowledge base not warmed up"
            result = self.kb.retriever.run(query, top_k=self.top_k)
        except Exception as exc:
            log.exception("retrieval failed for %r", query)
            yield ErrorEvent(f"Search failed: {exc}", question=q, reason="search_failed")
            return
        timings["retrieval_s"] = round(time.perf_counter() - t0, 3)

        if not result.has_evidence:
            # No evidence: a fixed refusal, and the LLM is never asked (it would answer from its
            # own knowledge, which is exactly what a knowledge-base app must not do).
            text = self.refusal(language)
            note = result.note or "no relevant passage found"
            log.info("no evidence for %r (%s): refusing", query, note)
            yield SourcesEvent([], note=note)
            yield DeltaEvent(text)
            timings["total_s"] = round(time.perf_counter() - t0, 3)
            yield FinalEvent(
                answer=text, question=q, query=query, language=language, sources=[], citations=[],
                cited_sources=[], refused=True, note=note, timings=timings, question_truncated=truncated,
            )
            return

        prompt: Prompt | None = None
        try:
            llm = self.get_llm()
            prompt = build_prompt(query, result.chunks, language, llm.count_tokens, self._context_budget(llm, query))
        except LLMUnavailableError as exc:
            # Still show what was found: the evidence is useful even when the LLM is down.
            fallback = build_prompt(query, result.chunks, language, approx_token_count, self.settings.context_tokens)
            yield SourcesEvent(fallback.sources)
            yield ErrorEvent(f"The language model is unavailable: {exc}", question=q, reason="llm_unavailable")
            return
        yield SourcesEvent(prompt.sources)

        parts: list[str] = []
        try:
            for delta in self.get_llm().stream(prompt.messages):
                if not parts:
                    timings["first_token_s"] = round(time.perf_counter() - t0, 3)
                parts.append(delta)
                yield DeltaEvent(delta)
        except LLMUnavailableError as exc:
            log.warning("LLM failed: %s", exc)
            yield ErrorEvent(f"The language model is unavailable: {exc}", question=q, reason="llm_unavailable")
            return
        except Exception as exc:  # a bug or a backend error type we do not know: still no traceback to the user
            log.exception("LLM stream failed")
            message = f"The answer could not be generated: {type(exc).__name__}: {exc}"
            yield ErrorEvent(message, question=q, reason="generation_failed")
            return

        answer = "".join(parts).strip()
        citations = map_citations(answer, prompt.sources)
        if not citations and self.settings.infer_citations:
            inferred = infer_citation(answer, prompt.sources, self.kb.tokenizer.tokenize, self.settings.infer_min_support)
            if inferred is not None:
                marker = f" [{inferred.number}]"
                yield DeltaEvent(marker)  # the stream and the final answer stay identical
                answer += marker
                citations = [inferred]
        cited = list(dict.fromkeys(c.source.chunk.source for c in citations))
        timings["total_s"] = round(time.perf_counter() - t0, 3)
        yield FinalEvent(
            answer=answer, question=q, query=query, language=language, sources=prompt.sources,
            citations=citations, cited_sources=cited, refused=False, dropped_sources=prompt.dropped,
            timings=timings, question_truncated=truncated,
        )

    def answer(self, question: str, history: History | None = None) -> FinalEvent | ErrorEvent:
        """The whole answer at once (the last event of :meth:`stream`)."""
        last: AnswerEvent | None = None
        for event in self.stream(question, history):
            last = event
        assert isinstance(last, (FinalEvent, ErrorEvent))
        return last
