"""Question -> (standalone query) -> hybrid retrieval -> refusal or a streamed, cited LLM answer.

The events it yields are in ``events``, citation parsing in ``citations``, question and history
hygiene in ``question``."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, Protocol

from ingest.loaders.tables import is_table_line, table_cells
from rag_app.config import AnswerSettings, Settings
from rag_app.llm.base import ChatMessage, LLMBackend, LLMUnavailableError, approx_token_count
from rag_app.retrieval.protocols import Tokenizer
from rag_app.retrieval.results import RetrievalResult

from .answer_check import AnswerCheck, AnswerChecker
from .answer_kind import KIND_NAMES, missing_kind
from .citations import is_bare_citation, is_non_answer, may_be_bare_citation, resolve_citations
from .events import AnswerEvent, DeltaEvent, ErrorEvent, FinalEvent, QueryEvent, Refusal, SourcesEvent
from .figure_confidence import figure_confidence, written_tokens
from .followup import FollowupMethod, StandaloneQuery, prompt_question, standalone_query
from .language import Language, detect_language
from .look_alike import better_fitting_line
from .prompt import Prompt, ask_for_content, build_prompt, build_rewrite_messages, clean_rewrite
from .question import BoundedQuestion, History, bound_question, clean_question, normalise_history

log = logging.getLogger(__name__)

# Generation ends where the model starts echoing the prompt's source delimiters (a small model
# sometimes closes its answer with "<<<END SOURCE [1]>>>"): no answer carries prompt markup.
ANSWER_STOPS = ["<<<", "=== END OF SOURCES", "=== SOURCES"]


# What the answerer needs from a knowledge base, as protocols: the knowledge base lives in a higher
# layer (rag_app.service), which answering must not import, even for type hints.
class QuestionEmbedder(Protocol):
    """The embedder's token view, to bound a question to what retrieval will embed."""

    @property
    def max_tokens(self) -> int: ...

    def prefix_tokens(self, kind: Literal["query", "passage"] = "passage") -> int: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


class Retriever(Protocol):
    def run(self, query: str, top_k: int | None = None) -> RetrievalResult: ...


class AnswerSource(Protocol):
    """A warmed knowledge base (``rag_app.service.KnowledgeBase`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def embedder(self) -> QuestionEmbedder: ...

    @property
    def retriever(self) -> Retriever | None: ...

    @property
    def tokenizer(self) -> Tokenizer: ...


class Answerer:
    """Answers questions from a knowledge base with an LLM, streaming :data:`AnswerEvent` objects.

    ``llm`` is a backend or a zero-argument factory: with a factory the backend is only built on the
    first question that needs it (refusals never do), so the app starts without loading a model.
    A stream ends with exactly one :class:`FinalEvent` or :class:`ErrorEvent`.
    """

    def __init__(
        self,
        kb: AnswerSource,
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
        self._checker = AnswerChecker(self.settings.check) if self.settings.check.enabled else None
        self._llm: LLMBackend | None = llm if isinstance(llm, LLMBackend) else None
        self._llm_factory = None if isinstance(llm, LLMBackend) else llm
        self._llm_lock = threading.Lock()
        # Told of each question's retrieval (the service records asked questions' styles with it).
        self.on_retrieved: Callable[[RetrievalResult], object] | None = None

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
        """The LLM's standalone version of a follow-up question (one short, non-streamed call)."""
        llm = self.get_llm()
        messages = build_rewrite_messages(question, history)
        raw = llm.generate(messages, max_new_tokens=self.settings.rewrite_max_tokens, stop=["\n\n"])
        return clean_rewrite(raw, question)

    def standalone(self, question: str, history: Sequence[ChatMessage]) -> StandaloneQuery:
        """The query to retrieve with for a follow-up (``answer.followup_query``; see ``followup``)."""
        tokenize = self.kb.tokenizer.tokenize
        if self.settings.followup_query == "combined":
            return standalone_query(question, history, tokenize, None)

        def rewrite() -> str:
            try:
                return self.rewrite(question, history)
            except Exception as exc:  # rewriting is an optimisation: the joined turns still work
                log.warning("follow-up rewrite failed, joining it to the previous question: %s", exc)
                return ""

        found = standalone_query(question, history, tokenize, rewrite)
        if found.rejected:
            log.info("follow-up rewrite not used (%s): searching for %r", found.rejected, found.text)
        return found

    def _context_budget(self, llm: LLMBackend, question: str) -> int:
        # The configured budget, but never more than the model's window leaves after the rules,
        # the question and the answer (a small local context must not overflow).
        llm_settings = getattr(llm, "settings", None)
        answer_tokens = int(getattr(llm_settings, "max_new_tokens", 512) or 512)
        room = llm.context_window - answer_tokens - approx_token_count(question) - 400
        return max(64, min(self.settings.context_tokens, room))

    # --- main entry --------------------------------------------------------------------------------
    def stream(self, question: str | BoundedQuestion | None, history: History | None = None) -> Iterator[AnswerEvent]:
        """Events for one question: QueryEvent, SourcesEvent, DeltaEvents, then one Final/ErrorEvent.

        ``question`` is raw text, or a :class:`BoundedQuestion` the caller already got from
        :meth:`prepare_question` (the API does, to reject an empty question before streaming):
        that one is used as it is, not cleaned and tokenized a second time."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        prepared = question if isinstance(question, BoundedQuestion) else self.prepare_question(question)
        if prepared is None or not prepared.text:
            yield ErrorEvent("Please enter a question.", question="", reason="empty_question")
            return
        q, truncated = prepared.text, prepared.truncated
        language = detect_language(q)
        turns = normalise_history(history, self.settings.max_history_turns)

        query: str = q
        method: FollowupMethod = "as_asked"
        if turns and self.settings.rewrite_followups:
            standalone = self.standalone(q, turns)
            # The query is model output or joined turns: the same cleaning and bound as a typed question.
            bounded = self.prepare_question(standalone.text)
            if bounded is not None:
                query, method = bounded.text, standalone.method
            timings["rewrite_s"] = round(time.perf_counter() - t0, 3)
        yield QueryEvent(query=query, question=q, rewritten=query != q, language=language, truncated=truncated,
                         method=method)

        try:
            assert self.kb.retriever is not None, "knowledge base not warmed up"
            result = self.kb.retriever.run(query, top_k=self.top_k)
        except Exception as exc:
            log.exception("retrieval failed for %r", query)
            yield ErrorEvent(f"Search failed: {exc}", question=q, reason="search_failed")
            return
        timings["retrieval_s"] = round(time.perf_counter() - t0, 3)
        if self.on_retrieved is not None:
            try:
                self.on_retrieved(result)
            except Exception:  # bookkeeping must never cost the user an answer
                log.exception("recording the retrieval of %r failed", query)

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
                cited_sources=[], refused=True, refusal="no_evidence", note=note, timings=timings,
                question_truncated=truncated,
            )
            return

        # What the LLM is asked: the standalone query, except that a joined follow-up is put as the
        # follow-up with its context, so the model answers it rather than both questions.
        asked = prompt_question(q, turns, language) if method == "combined" else query
        prompt: Prompt | None = None
        try:
            llm = self.get_llm()
            prompt = build_prompt(asked, result.chunks, language, llm.count_tokens, self._context_budget(llm, asked),
                                  self.settings.table_rows)
        except LLMUnavailableError as exc:
            # Still show what was found: the evidence is useful even when the LLM is down.
            fallback = build_prompt(asked, result.chunks, language, approx_token_count, self.settings.context_tokens,
                                    self.settings.table_rows)
            yield SourcesEvent(fallback.sources)
            yield ErrorEvent(f"The language model is unavailable: {exc}", question=q, reason="llm_unavailable")
            return

        check: AnswerCheck | None = None
        if self._checker is not None:
            try:
                check = self._checker.run(llm, prompt, asked, language)
            except LLMUnavailableError as exc:
                yield SourcesEvent(prompt.sources)
                yield ErrorEvent(f"The language model is unavailable: {exc}", question=q, reason="llm_unavailable")
                return
            timings["check_s"] = round(check.seconds, 3)
        if check is not None and not check.passed:
            # The passages are about the topic but do not hold the answer: say so, and show them as
            # related reading, never as support.
            text = self.settings.not_in_sources_zh if language == "zh" else self.settings.not_in_sources_en
            note = check.describe()
            yield SourcesEvent(prompt.sources, note=note, related_only=True)
            yield DeltaEvent(text)
            timings["total_s"] = round(time.perf_counter() - t0, 3)
            yield FinalEvent(
                answer=text, question=q, query=query, language=language, sources=prompt.sources, citations=[],
                cited_sources=[], refused=True, refusal="not_in_sources", answer_check=check.score, note=note,
                dropped_sources=prompt.dropped, timings=timings, question_truncated=truncated,
            )
            return
        yield SourcesEvent(prompt.sources)

        parts: list[str] = []
        token_probs: list[tuple[str, float]] = []  # each generated token and its probability, where read
        held: str | None = ""  # the reply's start while it is only source markers; None once words came
        try:
            for delta in llm.stream_scored(prompt.messages, token_probs, stop=ANSWER_STOPS):
                if not parts:
                    timings["first_token_s"] = round(time.perf_counter() - t0, 3)
                parts.append(delta)
                if held is not None:
                    if may_be_bare_citation(held + delta):
                        held += delta
                        continue
                    delta, held = held + delta, None
                yield DeltaEvent(delta)
            if held and is_bare_citation(held):
                # Only "[1]": the source named, the answer not written. Asked once more for it, in the
                # same conversation (the prompt is still in the model's cache); if it again writes
                # nothing else, the support rule below withholds it.
                log.info("bare citation %r for %r: asking for the answer itself", held.strip(), asked)
                parts, token_probs = [], []
                for delta in llm.stream_scored(ask_for_content(prompt.messages, held.strip(), language), token_probs,
                                               stop=ANSWER_STOPS):
                    parts.append(delta)
                    yield DeltaEvent(delta)
            elif held:
                yield DeltaEvent(held)  # an unfinished marker or white space: the stream stays the answer
        except LLMUnavailableError as exc:
            log.warning("LLM failed: %s", exc)
            yield ErrorEvent(f"The language model is unavailable: {exc}", question=q, reason="llm_unavailable")
            return
        except Exception as exc:  # a bug or a backend error type we do not know: still no traceback to the user
            log.exception("LLM stream failed")
            message = f"The answer could not be generated: {type(exc).__name__}: {exc}"
            yield ErrorEvent(message, question=q, reason="generation_failed")
            return

        written = "".join(parts)
        tokenize = self.kb.tokenizer.tokenize
        confidence = figure_confidence(written_tokens(token_probs, written), asked, tokenize)
        answer = written.strip()
        refusal: Refusal = "model" if is_non_answer(answer) else ""
        min_support = self.settings.infer_min_support if self.settings.infer_citations else None
        citations = resolve_citations(answer, prompt.sources, asked, tokenize, min_support)
        if citations and citations[0].inferred:
            yield DeltaEvent(citations[0].marker)  # the stream and the final answer stay identical
            answer += citations[0].marker
        draft, note = "", ""
        if not citations and not refusal and self.settings.refuse_unsupported:
            # No quoted passage holds the answer's own words and numbers: it would read as sure while
            # the documents do not back it. Say so; the draft stays visible as what the model wrote.
            refusal, draft = "unsupported", answer
            answer = self.settings.unsupported_zh if language == "zh" else self.settings.unsupported_en
            note = unsupported_note(draft, language)
        missing = missing_kind(q, answer, language) if not refusal and self.settings.refuse_off_question else None
        if missing is not None:
            # "How long ...?" answered with a price: a look-alike taken from the passages, wrong whatever it cites.
            refusal, draft, citations = "off_question", answer, []
            name = KIND_NAMES[missing][language]
            template = self.settings.off_question_zh if language == "zh" else self.settings.off_question_en
            answer = template.replace("{kind}", name)
            note = off_question_note(draft, name, language)
        better = (
            better_fitting_line(q, answer, [(s.chunk.text, s.chunk.section) for s in prompt.sources], tokenize,
                                self.settings.look_alike_margin)
            if not refusal and self.settings.refuse_off_question and language == "en" else None
        )
        if better is not None:
            # A value of the asked kind, but read off a line about something else ("£130" for a party
            # overrun, from the packages table): wrong whatever it cites. Show the line that fits.
            refusal, draft, citations = "off_question", answer, []
            answer = self.settings.look_alike_en
            note = look_alike_note(draft, better)
        if not refusal and confidence is not None and confidence < self.settings.figure_confidence_cutoffs[language]:
            # Its figure was a split vote ("£24" or "£45"?): as likely a look-alike as the answer.
            refusal, draft, citations = "unsure", answer, []
            answer = self.settings.unsure_zh if language == "zh" else self.settings.unsure_en
            note = unsure_note(draft, confidence, language)
        cited = list(dict.fromkeys(c.source.chunk.source for c in citations))
        timings["total_s"] = round(time.perf_counter() - t0, 3)
        yield FinalEvent(
            answer=answer, question=q, query=query, language=language, sources=prompt.sources,
            citations=citations, cited_sources=cited, refused=bool(refusal), refusal=refusal,
            answer_check=check.score if check is not None else None, draft=draft, note=note,
            dropped_sources=prompt.dropped, timings=timings, question_truncated=truncated,
            figure_confidence=confidence,
        )

    def answer(self, question: str | BoundedQuestion | None, history: History | None = None) -> FinalEvent | ErrorEvent:
        """The whole answer at once (the last event of :meth:`stream`; a prepared question too)."""
        last: AnswerEvent | None = None
        for event in self.stream(question, history):
            last = event
        assert isinstance(last, (FinalEvent, ErrorEvent))
        return last


def _quoted(draft: str, limit: int = 300) -> str:
    return draft if len(draft) <= limit else draft[:limit].rstrip() + "…"


def unsupported_note(draft: str, language: Language) -> str:
    """Why an answer was withheld as unsupported, quoting what the model wrote."""
    quoted = _quoted(draft)
    if language == "zh":
        return f"模型写出的回答在引用的资料中找不到依据（资料里没有它自己的词语和数字）：“{quoted}”"
    return f"None of the quoted passages holds the model's own words and numbers. The model wrote: \u201c{quoted}\u201d"


def look_alike_note(draft: str, better: str) -> str:
    """Why an answer was withheld as a look-alike: what the model wrote and the line that fits better."""
    line = " · ".join(table_cells(better)) if is_table_line(better) else better
    return (f"The model wrote: \u201c{_quoted(draft)}\u201d. Its figure is not from the line that fits the question"
            f" best, which reads: \u201c{_quoted(line, 400)}\u201d")


def unsure_note(draft: str, confidence: float, language: Language) -> str:
    """Why an answer was withheld as unsure, quoting what the model wrote."""
    if language == "zh":
        return f"模型写出这个数字时的把握只有 {confidence:.0%}：“{_quoted(draft)}”"
    return (f"The model gave its figure a probability of only {confidence:.0%}."
            f" The model wrote: \u201c{_quoted(draft)}\u201d")


def off_question_note(draft: str, kind_name: str, language: Language) -> str:
    """Why an answer was withheld as off the question, quoting what the model wrote."""
    if language == "zh":
        return f"问题问的是{kind_name}，模型的回答里没有：“{_quoted(draft)}”"
    return (f"The question asks for {kind_name}; the model's answer gives none."
            f" The model wrote: \u201c{_quoted(draft)}\u201d")
