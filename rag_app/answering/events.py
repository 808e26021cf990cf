"""What :meth:`Answerer.stream` yields: one QueryEvent, one SourcesEvent, DeltaEvents, then exactly
one FinalEvent or ErrorEvent. Each has ``type`` and ``to_dict()`` for server-sent events and JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .citations import Citation
from .followup import FollowupMethod
from .language import Language
from .prompt import NumberedSource


@dataclass(frozen=True)
class QueryEvent:
    """The query sent to retrieval: the question itself, or its standalone rewrite."""

    query: str
    question: str
    rewritten: bool
    language: Language
    truncated: bool = False  # the question was cut to answer.max_question_tokens
    # How a follow-up became the query: as asked, the LLM's checked rewrite, or joined to the
    # previous question (``rag_app.answering.followup``).
    method: FollowupMethod = "as_asked"
    type: str = "query"

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "question": self.question,
            "rewritten": self.rewritten,
            "language": self.language,
            "truncated": self.truncated,
            "method": self.method,
        }


@dataclass(frozen=True)
class SourcesEvent:
    """The numbered sources quoted to the LLM (empty: no evidence, a refusal follows).

    ``related_only``: the answer check found that these passages do not answer the question; they
    are shown as related reading, and the "not in the documents" message follows."""

    sources: list[NumberedSource]
    note: str = ""  # why there is no evidence, when there is none
    related_only: bool = False
    type: str = "sources"

    def to_dict(self) -> dict[str, Any]:
        return {"sources": [s.to_dict() for s in self.sources], "note": self.note, "related_only": self.related_only}


# Why an answer is a refusal: retrieval found nothing relevant; the answer check found that the
# passages do not hold the answer; the model itself said that it does not know; the model's
# answer is backed by no quoted passage (``answer.refuse_unsupported``); or it gives no value of the
# kind the question asks for, e.g. no duration for "how long" (``answer.refuse_off_question``); or the
# model was unsure of the figure it wrote (``answer.min_figure_confidence``).
Refusal = Literal["", "no_evidence", "not_in_sources", "model", "unsupported", "off_question", "unsure"]


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
    refused: bool  # a refusal of any kind (``refusal`` says which): no citation on it
    note: str = ""
    refusal: Refusal = ""
    answer_check: float | None = None  # the verdict score, when the check ran
    draft: str = ""  # a withheld answer (unsupported, off_question, unsure): what the model wrote, streamed
    figure_confidence: float | None = None  # the lowest probability of its figures' tokens (figure_confidence.py)
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
            "refusal": self.refusal,
            "answer_check": self.answer_check,
            "figure_confidence": self.figure_confidence,
            "draft": self.draft,
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


AnswerEvent = QueryEvent | SourcesEvent | DeltaEvent | FinalEvent | ErrorEvent
