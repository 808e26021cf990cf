"""The one rule for characters that never belong in indexed text, a question or a search query.

It lives in ``ingest`` (the lowest layer: ``ingest`` never imports ``rag_app``) so the loaders'
``clean_text``, the answerer's ``clean_question`` and the retriever's ``clean_query`` all remove the
same set; they only differ in what they then do with whitespace, line breaks and length.
"""
from __future__ import annotations

import re

# C0 controls except tab and newline, DEL and the C1 controls (U+0080-U+009F): terminal escapes,
# NULs and other bytes with no meaning in text. (Callers that keep line structure turn \r and \f
# into \n before applying the rule.)
CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Zero-width space, LRM/RLM, bidirectional embeddings/overrides/isolates (they can hide or reorder
# text), word joiner, the BOM, and lone surrogates (valid in a Python str and in JSON's \ud800
# escapes, but every UTF-8 encoder downstream raises on them). ZWJ/ZWNJ stay: emoji sequences and
# several scripts need them.
INVISIBLE_CHARS = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]")


def remove_unsafe_characters(text: str, control_replacement: str = " ") -> str:
    """``text`` without invisible characters, and with each control character replaced by
    ``control_replacement`` (a space keeps ``a\\x00b`` two words; loaders pass ``""``).

    Tab and newline are kept: what to do with whitespace is the caller's business."""
    return INVISIBLE_CHARS.sub("", CONTROL_CHARS.sub(control_replacement, text))
