"""The judged follow-up set with the packaged LLM (slow: one rewrite per follow-up): the default
query finds the answering chunk for at least 90% of the follow-ups in each language, and a rewrite
that repeats the previous answer never reaches retrieval."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_app.answering import Answerer
from rag_app.config import AnswerSettings
from rag_app.evaluation.followups import hit_rate, load_followups, run_followups
from rag_app.llm import LLMSettings, make_llm
from tests.support.paths import REPO

PAIRS = REPO / "benchmarks" / "answer_sets" / "followups.jsonl"


@pytest.mark.slow
def test_follow_ups_retrieve_the_answering_chunk_with_the_packaged_llm(samples_kb) -> None:
    pairs = load_followups(PAIRS)
    assert sum(p.language == "zh" for p in pairs) >= 20 and sum(p.language == "en" for p in pairs) >= 20
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    llm = make_llm(LLMSettings(temperature=0.0, num_threads=2), cache)
    answerer = Answerer(samples_kb, llm, AnswerSettings())
    combined = run_followups(answerer, pairs, "combined")  # the default
    checked = run_followups(answerer, pairs, "llm_checked")
    for language in ("zh", "en"):
        assert hit_rate(combined, language) >= 0.9, [r for r in combined if not r.hit]
        assert hit_rate(checked, language) >= 0.9, [r for r in checked if not r.hit]
    for r, pair in zip(checked, pairs):
        answer = pair.history[-1]["content"]
        assert r.query.strip() not in answer, r
