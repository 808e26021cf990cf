"""The judged follow-up set with the packaged LLM (slow: a calibration, then one rewrite per
follow-up): over the samples, calibrated as the app calibrates them, the default query finds the
answering chunk for at least 90% of the follow-ups in each language, the checked LLM rewrite too,
and a rewrite that repeats the previous answer never reaches retrieval."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag_app.answering import Answerer
from rag_app.config import AnswerSettings, CalibrationSettings
from rag_app.evaluation.followups import hit_rate, load_followups, run_followups
from rag_app.llm import LLMSettings, make_llm
from rag_app.service import RagService
from tests.support.paths import REPO, SAMPLES

PAIRS = REPO / "benchmarks" / "answer_sets" / "followups.jsonl"


@pytest.mark.slow
def test_follow_ups_retrieve_the_answering_chunk_with_the_packaged_llm(make_kb, tmp_path: Path) -> None:
    pairs = load_followups(PAIRS)
    assert sum(p.language == "zh" for p in pairs) >= 20 and sum(p.language == "en" for p in pairs) >= 20
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    llm = make_llm(LLMSettings(temperature=0.0, num_threads=2), cache)
    kb = make_kb()
    settings = kb.settings.model_copy(update={"calibration": CalibrationSettings(automatic=False)})
    service = RagService.open(settings, kb=kb, llm=llm, background=False)
    shutil.copytree(SAMPLES, tmp_path / "docs")
    service.ingest_paths([tmp_path / "docs"])
    service.calibrate()
    answerer = Answerer(kb, llm, AnswerSettings())
    alone = run_followups(answerer, pairs, "followup_alone")
    combined = run_followups(answerer, pairs, "combined")  # the default
    checked = run_followups(answerer, pairs, "llm_checked")
    for language in ("zh", "en"):
        assert hit_rate(combined, language) >= 0.9, [r for r in combined if not r.hit]
        assert hit_rate(checked, language) >= 0.9, [r for r in checked if not r.hit]
        assert hit_rate(combined, language) > hit_rate(alone, language)
    for r, pair in zip(checked, pairs):
        assert r.query.strip() not in pair.history[-1]["content"], r
