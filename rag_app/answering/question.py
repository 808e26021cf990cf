"""User questions made safe to search with and to quote: invisible and control characters out, the
length bounded in embedder tokens (the same bound for retrieval, the prompt and the search API)."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TokenOffsets = Callable[[str], list[tuple[int, int]]]  # character span of each token of a text

# C0/C1 controls (tab and newline kept), DEL, zero-width and bidirectional-override characters (they
# can hide or reorder text), the BOM, and lone surrogates (valid in a Python str and in JSON's \ud800
# escapes, but they make every UTF-8 encoder downstream raise).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]")
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
# No token of a real tokenizer is longer than this many characters: cutting the text here first
# keeps tokenizing a 100k-character paste cheap.
_MAX_TOKEN_CHARS = 32


def clean_question(text: str | None) -> str:
    """The question without control, invisible or unencodable characters; whitespace runs collapsed.

    Line breaks are kept (a pasted multi-line question stays readable); ``\\r\\n`` becomes ``\\n``.
    """
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
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
