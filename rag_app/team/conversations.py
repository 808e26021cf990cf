"""Kept conversations: each user's chats with every answer as it was given (question, the query
searched for, answer, citations with chunk ids, refusal, timings), listed, resumed, renamed, deleted.

A conversation remembers the knowledge bases it searches. Without accounts (the one-user setup)
conversations belong to no user (``user_id`` None) and are everyone's.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from ingest.state import StateDatabase

from .schema import conversations, feedback, messages

MAX_TITLE_CHARS = 120


@dataclass(frozen=True)
class Conversation:
    id: str
    user_id: int | None
    kbs: list[str]
    title: str
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kbs": self.kbs, "title": self.title, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    position: int
    question: str
    query: str
    answer: str
    outcome: str  # answered | refused | not_in_documents | unsupported | error
    citations: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    timings: dict[str, float]
    created_at: float
    feedback: dict[str, Any] | None = field(default=None)  # {"vote": 1|-1, "comment": ...} when given

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _title(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= MAX_TITLE_CHARS else line[: MAX_TITLE_CHARS - 1] + "…"


class Conversations:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    @staticmethod
    def _owned(user_id: int | None) -> ColumnElement[bool]:
        column = conversations.c.user_id
        return column.is_(None) if user_id is None else column == user_id

    def create(self, user_id: int | None, kbs: list[str], title: str = "") -> Conversation:
        now = time.time()
        conv = Conversation(uuid.uuid4().hex, user_id, list(kbs), _title(title), now, now)
        with self.db.write() as conn:
            conn.execute(insert(conversations).values(id=conv.id, user_id=user_id, kbs=json.dumps(conv.kbs),
                                                      title=conv.title, created_at=now, updated_at=now))
        return conv

    def of_user(self, user_id: int | None, limit: int = 200) -> list[Conversation]:
        with self.db.read() as conn:
            rows = conn.execute(select(conversations).where(self._owned(user_id))
                                .order_by(conversations.c.updated_at.desc()).limit(limit)).all()
        return [_conversation(r) for r in rows]

    def get(self, user_id: int | None, conversation_id: str) -> Conversation | None:
        """The conversation when it is this user's (anyone else's reads as missing)."""
        with self.db.read() as conn:
            row = conn.execute(select(conversations).where(
                conversations.c.id == conversation_id, self._owned(user_id))).one_or_none()
        return _conversation(row) if row else None

    def messages(self, conversation_id: str) -> list[Message]:
        return self._messages(messages.c.conversation_id == conversation_id)

    def _messages(self, where: ColumnElement[bool]) -> list[Message]:
        """Messages with their feedback, in conversation order."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(messages, feedback.c.vote, feedback.c.comment)
                .outerjoin(feedback, feedback.c.message_id == messages.c.id)
                .where(where).order_by(messages.c.position)
            ).mappings().all()
        return [_message(r) for r in rows]

    def history(self, conversation_id: str, turns: int = 6) -> list[dict[str, str]]:
        """The last ``turns`` exchanges as chat turns, for the answerer's follow-up handling."""
        out: list[dict[str, str]] = []
        for m in self.messages(conversation_id)[-turns:]:
            out += [{"role": "user", "content": m.question}, {"role": "assistant", "content": m.answer}]
        return out

    def add_message(
        self, conversation_id: str, *, question: str, query: str, answer: str, outcome: str,
        citations: list[dict[str, Any]], sources: list[dict[str, Any]], timings: dict[str, float],
    ) -> Message:
        now = time.time()
        message_id = uuid.uuid4().hex
        with self.db.write() as conn:
            position = int(conn.execute(select(func.count()).select_from(messages)
                                        .where(messages.c.conversation_id == conversation_id)).scalar_one())
            conn.execute(insert(messages).values(
                id=message_id, conversation_id=conversation_id, position=position, question=question, query=query,
                answer=answer, outcome=outcome, citations=json.dumps(citations, ensure_ascii=False),
                sources=json.dumps(sources, ensure_ascii=False), timings=json.dumps(timings), created_at=now))
            changes: dict[str, Any] = {"updated_at": now}
            if position == 0:
                current = conn.execute(select(conversations.c.title)
                                       .where(conversations.c.id == conversation_id)).scalar_one()
                if not current:
                    changes["title"] = _title(question)
            conn.execute(update(conversations).where(conversations.c.id == conversation_id).values(**changes))
        return Message(message_id, conversation_id, position, question, query, answer, outcome, citations, sources,
                       timings, now)

    def message(self, message_id: str) -> tuple[Conversation, Message] | None:
        """One stored answer and the conversation it belongs to."""
        found = self._messages(messages.c.id == message_id)
        if not found:
            return None
        with self.db.read() as conn:
            row = conn.execute(select(conversations).where(conversations.c.id == found[0].conversation_id)).one()
        return _conversation(row), found[0]

    def rename(self, user_id: int | None, conversation_id: str, title: str) -> bool:
        with self.db.write() as conn:
            done = conn.execute(update(conversations).where(conversations.c.id == conversation_id,
                                                            self._owned(user_id)).values(title=_title(title)))
            return bool(done.rowcount)

    def delete(self, user_id: int | None, conversation_id: str) -> bool:
        with self.db.write() as conn:
            owned = conn.execute(select(conversations.c.id).where(conversations.c.id == conversation_id,
                                                                  self._owned(user_id))).first()
            if owned is None:
                return False
            _delete_conversations(conn, [conversation_id])
            return True

    def delete_for_kb(self, kb: str) -> int:
        """Remove every conversation that searches knowledge base ``kb`` (it is being deleted)."""
        with self.db.write() as conn:
            ids = [cid for cid, kbs in conn.execute(select(conversations.c.id, conversations.c.kbs))
                   if kb in json.loads(kbs)]
            _delete_conversations(conn, ids)
            return len(ids)


def _delete_conversations(conn: Any, ids: list[str]) -> None:
    # Explicitly, children first: the result never depends on SQLite's foreign-key pragma.
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        owned_messages = select(messages.c.id).where(messages.c.conversation_id.in_(part))
        conn.execute(delete(feedback).where(feedback.c.message_id.in_(owned_messages)))
        conn.execute(delete(messages).where(messages.c.conversation_id.in_(part)))
        conn.execute(delete(conversations).where(conversations.c.id.in_(part)))


def _conversation(row: Any) -> Conversation:
    return Conversation(row.id, row.user_id, json.loads(row.kbs), row.title, row.created_at, row.updated_at)


def _message(row: Any) -> Message:
    vote = row["vote"]
    return Message(
        row["id"], row["conversation_id"], row["position"], row["question"], row["query"], row["answer"],
        row["outcome"], json.loads(row["citations"]), json.loads(row["sources"]), json.loads(row["timings"]),
        row["created_at"], None if vote is None else {"vote": vote, "comment": row["comment"]},
    )
