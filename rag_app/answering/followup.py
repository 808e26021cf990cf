"""Follow-up questions made standalone for retrieval, with a rewrite that cannot lose the thread.

A small LLM asked to rewrite "那住宿呢？" after a question about train seats often returns the
previous *answer*, and retrieval then finds the previous answer's chunk again. So the LLM's rewrite
is only used when it passes checks that need no model (a question, keeps the follow-up's new words,
not copied from an earlier answer, not much longer than what it replaces); otherwise, or when
configured so, the query is the previous question joined with the follow-up: always on the thread,
and what both retrieval legs handle well (BM25 gets the new words, the embedding the context).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rag_app.llm.base import ChatMessage

Tokenize = Callable[[str], list[str]]
FollowupMethod = Literal["as_asked", "rewritten", "combined"]

_QUESTION_RE = re.compile(
    r"[?？]\s*$|什么|哪|吗|呢|怎么|怎样|多少|多久|多长|几|是否|如何|为什么|为何|谁|能否|可否|有没有"
    r"|^\s*(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
    r"should|will|would|may|must|has|have)\b",
    re.IGNORECASE,
)
# Words that point back into the conversation: a follow-up holding one needs its context.
_REFERRING_RE = re.compile(
    r"^\s*(?:那|那么|还有|另外|而|和|以及|其他|其它)|它|他们|她们|它们|这个|那个|这些|那些|这种|那种|该|其|上述|同样|呢[?？]?\s*$"
    r"|\b(?:it|its|they|them|their|that|this|these|those|there|same|also|too|one|ones|else|other)\b"
    r"|^\s*(?:and|what about|how about|or)\b",
    re.IGNORECASE,
)
# A question with this many content terms and no referring word stands on its own.
_SELF_CONTAINED_TERMS = 3
# A rewrite copied from an answer is at least this similar to it (difflib ratio on characters).
_COPY_RATIO = 0.6
# A rewrite may add this many characters beyond the previous question and the follow-up together.
_SLACK_CHARS = 24


@dataclass(frozen=True)
class StandaloneQuery:
    text: str
    method: FollowupMethod
    rejected: str = ""  # why the LLM's rewrite was not used, when it was not


def is_self_contained(question: str, tokenize: Tokenize) -> bool:
    """A follow-up that needs no context ("年假有多少天？" after a question about trains)."""
    return not _REFERRING_RE.search(question) and len(set(tokenize(question))) >= _SELF_CONTAINED_TERMS


def previous_question(history: Sequence[ChatMessage]) -> str:
    return next((m["content"] for m in reversed(history) if m["role"] == "user"), "")


def combined_query(question: str, history: Sequence[ChatMessage]) -> str:
    """The previous user question, then the follow-up: deterministic and on the thread."""
    previous = previous_question(history)
    return f"{previous} {question}".strip() if previous else question


def prompt_question(question: str, history: Sequence[ChatMessage], language: str) -> str:
    """How a joined follow-up is put to the LLM: the follow-up, with the previous question as its
    context (the joined query is for retrieval; asked as it is, a small model answers both)."""
    previous = previous_question(history)
    if not previous:
        return question
    if language == "zh":
        return f"{question}（上一个问题：{previous}）"
    return f"{question} (previous question: {previous})"


def rewrite_problem(rewrite: str, question: str, history: Sequence[ChatMessage], tokenize: Tokenize) -> str:
    """Why ``rewrite`` is not a faithful standalone form of ``question`` ("" when it is)."""
    text = rewrite.strip()
    if not text:
        return "empty rewrite"
    if not _QUESTION_RE.search(text):
        return "the rewrite is not a question"
    earlier = set().union(*(set(tokenize(m["content"])) for m in history)) if history else set()
    missing = (set(tokenize(question)) - earlier) - set(tokenize(text))
    if missing:
        return "the rewrite drops the follow-up's words: " + ", ".join(sorted(missing))
    squashed = _squash(text)
    for m in history:
        if m["role"] != "assistant":
            continue
        answer = _squash(m["content"])
        if squashed in answer or difflib.SequenceMatcher(None, squashed, answer).ratio() >= _COPY_RATIO:
            return "the rewrite repeats an earlier answer"
    if len(text) > len(previous_question(history)) + len(question) + _SLACK_CHARS:
        return "the rewrite is much longer than the question and its context"
    return ""


def standalone_query(
    question: str,
    history: Sequence[ChatMessage],
    tokenize: Tokenize,
    rewrite: Callable[[], str] | None,
) -> StandaloneQuery:
    """The query to retrieve with for a follow-up: the LLM's rewrite when ``rewrite`` is given and it
    passes :func:`rewrite_problem`, else :func:`combined_query`."""
    if not history or is_self_contained(question, tokenize):
        return StandaloneQuery(question, "as_asked")
    if rewrite is None:
        return StandaloneQuery(combined_query(question, history), "combined")
    candidate = rewrite()
    problem = rewrite_problem(candidate, question, history, tokenize)
    if not problem:
        return StandaloneQuery(candidate.strip(), "rewritten")
    return StandaloneQuery(combined_query(question, history), "combined", rejected=problem)


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())
