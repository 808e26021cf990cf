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
    kbs: list[str] | None = Field(None, min_length=1, max_length=20)  # several knowledge bases at once
    conversation_id: str | None = Field(None, max_length=32)  # continue (and keep) this conversation
    keep: bool = False  # keep the exchange as a new conversation (``saved`` says where)


class ConversationAsk(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    stream: bool = False


class NewConversation(BaseModel):
    kbs: list[str] = Field(min_length=1, max_length=20)
    title: str = Field("", max_length=500)


class Rename(BaseModel):
    title: str = Field(min_length=1, max_length=500)


class FeedbackRequest(BaseModel):
    vote: Literal["up", "down"]
    comment: str = Field("", max_length=2000)


class NewKnowledgeBase(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)


class KnowledgeBaseChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    sync_folder: str | None = Field(None, max_length=4096)
    sync_cron: str | None = Field(None, max_length=100)


class Membership(BaseModel):
    user: str = Field(min_length=1, max_length=200)
    role: Literal["reader", "editor", "owner"]


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    is_admin: bool = False


class NewPassword(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class NewToken(BaseModel):
    name: str = Field("", max_length=200)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int | None = Field(None, ge=1, le=50)  # default: retrieval.top_k
