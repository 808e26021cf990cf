"""Sentences of a chunk's text, and the inverse-cloze cut: one sentence out, the rest its evidence.

Questions made from a knowledge base's own chunks (reranker training data, calibration probes)
start here: a mid-length sentence that reads like prose (not a table row or a heading) is the
question, and the chunk without it is what answers it.
"""
from __future__ import annotations

import re

from ingest.text_tokenizer import is_cjk_char

# Latin stops need a space after them ("it.example.com" is one sentence); CJK ones do not.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])\s*|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def is_cjk_text(text: str) -> bool:
    """Mostly Chinese: measured in characters rather than words."""
    visible = [ch for ch in text if not ch.isspace()]
    return bool(visible) and sum(is_cjk_char(ch) for ch in visible) / len(visible) > 0.3


def text_length(text: str) -> int:
    """Characters for Chinese text, words otherwise: how long a sentence reads."""
    return len(re.sub(r"\s+", "", text)) if is_cjk_text(text) else len(_WORD.findall(text))


def question_sized(sentence: str) -> bool:
    """Long enough to ask something, short enough to be one question (10-80 Chinese characters or
    6-45 words), and mostly letters: not a table row, a list of numbers or a heading."""
    low, high = (10, 80) if is_cjk_text(sentence) else (6, 45)
    compact = sentence.replace(" ", "")
    letters = sum(ch.isalpha() for ch in compact)
    return low <= text_length(sentence) <= high and letters >= 0.5 * len(compact)


def cut_out(text: str, sentence: str) -> str:
    """``text`` without the first occurrence of ``sentence``, the rest left exactly as it was:
    re-joining sentences would change the spacing, a mark only the evidence would then carry."""
    start = text.find(sentence)
    if start < 0:
        return text
    return (text[:start] + text[start + len(sentence):]).strip()
