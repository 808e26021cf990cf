"""Thumbs up or down, with an optional comment, on an answer; kept with the answer's sources, and
exported as judged questions for ``rag-eval`` and training lines for ``rag-tune``.

Export rules: an upvoted answer's cited chunks are relevant to its question (qrels grade 1, and
``pos`` for training); a downvoted answer's cited chunks are judged not relevant (grade 0, and
``neg`` for training: they were quoted as support for an answer its reader rejected). Every
verdict, comment included, is in the judged-questions archive's ``feedback.jsonl`` as given.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import delete, select

from ingest.state import StateDatabase
from ingest.state.database import upsert

from .schema import feedback, messages

Vote = Literal[1, -1]
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class FeedbackItem:
    message_id: str
    kb: str
    vote: int
    comment: str
    created_at: float
    question: str
    query: str
    answer: str
    outcome: str
    cited_chunks: list[str]  # chunk ids the answer cited, in order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeedbackStore:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def record(self, message_id: str, user_id: int | None, kb: str, vote: Vote, comment: str = "") -> None:
        """One verdict per answer: a second one replaces the first."""
        values = {"message_id": message_id, "user_id": user_id, "kb": kb, "vote": vote,
                  "comment": comment[:MAX_COMMENT_CHARS], "created_at": time.time()}
        with self.db.write() as conn:
            conn.execute(upsert(conn, feedback, values, key="message_id",
                                update={k: values[k] for k in ("user_id", "vote", "comment", "created_at")}))

    def for_kb(self, kb: str) -> list[FeedbackItem]:
        query = (
            select(feedback.c.message_id, feedback.c.kb, feedback.c.vote, feedback.c.comment, feedback.c.created_at,
                   messages.c.question, messages.c.query, messages.c.answer, messages.c.outcome, messages.c.citations)
            .join(messages, messages.c.id == feedback.c.message_id)
            .where(feedback.c.kb == kb).order_by(feedback.c.created_at)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [FeedbackItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], _cited_chunks(json.loads(r[9])))
                for r in rows]

    def delete_for_kb(self, kb: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(feedback).where(feedback.c.kb == kb))


def _cited_chunks(citations: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(c["chunk_id"]) for c in citations if c.get("chunk_id")))


def training_lines(items: Iterable[FeedbackItem], text_of: Callable[[list[str]], dict[str, str]]) -> list[str]:
    """FlagEmbedding JSONL lines (``rag-tune run --data``): per question, the upvoted cited chunks as
    ``pos`` and the downvoted ones as ``neg``; questions with no positive are left out."""
    by_question: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
    for item in items:
        pos, neg = by_question.setdefault(item.query or item.question, ({}, {}))
        (pos if item.vote > 0 else neg).update(dict.fromkeys(item.cited_chunks))
    texts = text_of(sorted({c for pos, neg in by_question.values() for c in (*pos, *neg)}))
    lines = []
    for question, (pos, neg) in by_question.items():
        positives = [texts[c] for c in pos if c in texts]
        if positives:
            negatives = [texts[c] for c in neg if c in texts and c not in pos]
            lines.append(json.dumps({"query": question, "pos": positives, "neg": negatives, "pos_id": next(iter(pos)),
                                     "generator": "feedback"}, ensure_ascii=False))
    return lines


def judged_questions_zip(
    items: Iterable[FeedbackItem], corpus: Iterable[tuple[str, str, str]], name: str = "feedback"
) -> bytes:
    """A BEIR folder, zipped, for ``rag-eval --kb``: the knowledge base's chunks as ``corpus.jsonl``
    (``corpus``: ``(chunk_id, title, text)``), the judged questions as ``queries.jsonl`` and
    ``qrels/test.tsv`` (an upvoted answer's cited chunks 1, a downvoted one's 0: judged not
    relevant), and every verdict as it was given in ``feedback.jsonl`` (comments included)."""
    items = list(items)
    judged: dict[str, dict[str, int]] = {}
    for item in items:
        grades = judged.setdefault(item.query or item.question, {})
        for chunk_id in item.cited_chunks:
            grades[chunk_id] = max(grades.get(chunk_id, 0), 1 if item.vote > 0 else 0)
    judged = {q: grades for q, grades in judged.items() if grades}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{name}/corpus.jsonl", "w") as out:
            for chunk_id, title, text in corpus:
                line = json.dumps({"_id": chunk_id, "title": title, "text": text}, ensure_ascii=False)
                out.write((line + "\n").encode())
        queries = [{"_id": f"q{i}", "text": q} for i, q in enumerate(judged, start=1)]
        archive.writestr(f"{name}/queries.jsonl",
                         "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
        qrels = ["query-id\tcorpus-id\tscore"] + [
            f"{q['_id']}\t{chunk_id}\t{grade}"
            for q, grades in zip(queries, judged.values(), strict=True) for chunk_id, grade in grades.items()
        ]
        archive.writestr(f"{name}/qrels/test.tsv", "\n".join(qrels) + "\n")
        archive.writestr(f"{name}/feedback.jsonl",
                         "".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in items))
    return buffer.getvalue()
