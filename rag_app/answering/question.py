"""User questions made safe to search with and to quote: invisible and control characters out, the
length bounded in embedder tokens (the same bound for retrieval, the prompt and the search API)."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.text_cleaning import remove_unsafe_characters
from rag_app.llm.base import ChatMessage

log = logging.getLogger(__name__)

TokenOffsets = Callable[[str], list[tuple[int, int]]]  # character span of each token of a text
History = Sequence[Mapping[str, Any]]  # earlier chat turns as clients send them

_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
# No token of a real tokenizer is longer than this many characters: cutting the text here first
# keeps tokenizing a 100k-character paste cheap.
_MAX_TOKEN_CHARS = 32


def clean_question(text: str | None) -> str:
    """The question without control, invisible or unencodable characters (the one rule of
    ``ingest.text_cleaning``, shared with documents and search queries: controls become spaces);
    whitespace runs collapsed.

    Line breaks are kept (a pasted multi-line question stays readable); ``\\r\\n`` becomes ``\\n``.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = remove_unsafe_characters(text, control_replacement=" ")
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


@dataclass(frozen=True)
class BoundedQuestion:
    text: str
    truncated: bool  # the question was cut to ``max_tokens``
    original_chars: int  # length of the cleaned question before any cut


def bound_question(text: str, token_offsets: TokenOffsets, max_tokens: int) -> BoundedQuestion:
    """``text`` cut after its first ``max_tokens`` tokens (at a token boundary).

    Logged when it happens, with lengths only: a pasted document may be sensitive.
    """
    head = text[: max_tokens * _MAX_TOKEN_CHARS]
    offsets = token_offsets(head)
    if len(offsets) <= max_tokens and len(head) == len(text):
        return BoundedQuestion(text, False, len(text))
    end = offsets[max_tokens - 1][1] if len(offsets) > max_tokens else len(head)
    cut = text[:end].rstrip()
    log.warning(
        "question of %d characters cut to its first %d tokens (%d characters): answer.max_question_tokens",
        len(text), max_tokens, len(cut),
    )
    return BoundedQuestion(cut, True, len(text))


# --- earlier turns: the same hygiene as the question ----------------------------------------------


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
            out.append(ChatMessage(role=role, content=text))
    return out[-2 * max_turns :] if max_turns > 0 else []
