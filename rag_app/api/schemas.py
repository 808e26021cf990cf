"""Request bodies of the JSON API and the size limits that guard them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# A request-size guard only (longer is a 422): every question is cut to answer.max_question_tokens
# tokens before it is used, so a pasted 100k-character document is answered, from its beginning.
MAX_QUESTION_CHARS = 1_000_000
# Whole JSON bodies of /api/ask and /api/search: such a question with history, even \u-escaped,
# fits; a bigger body is refused (413) before it is read into memory.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_QUESTION_CHARS)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[ChatTurn] = Field(default_factory=list, max_length=200)
    stream: bool = False


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int | None = Field(None, ge=1, le=50)  # default: retrieval.top_k
