"""Follow-up retrieval: does the query made from a follow-up find the chunk that answers it?

A judged pair is an earlier exchange (question, answer), an elliptical follow-up ("那住宿呢？"), the
file that answers it and a short evidence string from that file. A hit = a chunk of that file
holding the evidence among the chunks retrieval passes (threshold on, ``top_k``: what the answer
is written from)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from rag_app.answering import Answerer
from rag_app.answering.followup import combined_query
from rag_app.answering.question import normalise_history
from rag_app.llm.base import ChatMessage

QueryMethod = Literal["followup_alone", "llm_unchecked", "llm_checked", "combined"]
METHODS: tuple[QueryMethod, ...] = ("followup_alone", "llm_unchecked", "llm_checked", "combined")


@dataclass(frozen=True)
class FollowupPair:
    id: str
    language: str
    history: list[ChatMessage]
    followup: str
    source: str  # file name
    evidence: str


@dataclass(frozen=True)
class FollowupResult:
    id: str
    language: str
    method: QueryMethod
    query: str
    hit: bool
    rejected: str = ""  # why the LLM's rewrite was not used (llm_checked)


def load_followups(path: Path) -> list[FollowupPair]:
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            history = normalise_history(row["history"], max_turns=8)
            pairs.append(FollowupPair(row["_id"], row["language"], history, row["followup"], row["source"],
                                      row["evidence"]))
    return pairs


def _squash(text: str) -> str:
    return "".join(text.split())


def query_for(answerer: Answerer, pair: FollowupPair, method: QueryMethod) -> tuple[str, str]:
    """The retrieval query ``method`` makes from the pair, and why a rewrite was rejected."""
    if method == "followup_alone":
        return pair.followup, ""
    if method == "combined":
        return combined_query(pair.followup, pair.history), ""
    if method == "llm_unchecked":  # what the app did before the checks
        return answerer.rewrite(pair.followup, pair.history), ""
    checked = answerer.settings.model_copy(update={"followup_query": "llm_checked"})
    found = Answerer(answerer.kb, answerer.get_llm(), checked).standalone(pair.followup, pair.history)
    return found.text, found.rejected


def run_followups(answerer: Answerer, pairs: Sequence[FollowupPair], method: QueryMethod) -> list[FollowupResult]:
    retriever = answerer.kb.retriever
    assert retriever is not None, "knowledge base not warmed up"
    out = []
    for pair in pairs:
        query, rejected = query_for(answerer, pair, method)
        chunks = retriever.run(query).chunks
        evidence = _squash(pair.evidence)
        hit = any(PurePath(c.chunk.source).name == pair.source and evidence in _squash(c.chunk.text) for c in chunks)
        out.append(FollowupResult(pair.id, pair.language, method, query, hit, rejected))
    return out


def hit_rate(results: Sequence[FollowupResult], language: str | None = None) -> float:
    group = [r for r in results if language is None or r.language == language]
    return sum(r.hit for r in group) / len(group) if group else float("nan")
