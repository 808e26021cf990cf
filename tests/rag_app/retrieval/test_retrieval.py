"""Hybrid retrieval on real components: e5 + Milvus Lite + BM25, fusion, threshold, reranker."""
from __future__ import annotations

import math

import pytest

from rag_app.config import FusionSettings, RerankerSettings, RetrievalSettings, ThresholdSettings
from rag_app.retrieval.fusion import reciprocal_rank_fusion, weighted_score_sum
from rag_app.retrieval.langchain_retriever import LangChainHybridRetriever
from rag_app.retrieval.pipeline import HybridRetriever, clean_query
from rag_app.retrieval.rerank import CrossEncoderReranker


def test_rrf_matches_the_formula() -> None:
    fused = reciprocal_rank_fusion({"dense": ["a", "b"], "bm25": ["b", "c"]}, {"dense": 1.0, "bm25": 0.5}, k=10)
    assert fused["a"] == pytest.approx(1 / 11)
    assert fused["b"] == pytest.approx(1 / 12 + 0.5 / 11)
    assert fused["c"] == pytest.approx(0.5 / 12)
    assert reciprocal_rank_fusion({"dense": ["a"]}, {"dense": 0.0}) == {}


def test_weighted_sum_normalises_each_leg() -> None:
    fused = weighted_score_sum(
        {"dense": {"a": 0.9, "b": 0.8}, "bm25": {"a": 0.0, "b": 20.0}}, {"dense": 1.0, "bm25": 1.0}
    )
    assert fused["a"] == pytest.approx(0.5) and fused["b"] == pytest.approx(0.5)


def test_clean_query_handles_absurd_input() -> None:
    assert clean_query("\x00\x07  \n", 100) == ""
    assert clean_query("ＡＢＣ\x1b[31m 年假", 100) == "ABC [31m 年假"
    assert len(clean_query("长" * 100_000, 2000)) == 2000


@pytest.fixture
def sample_kb(samples_kb):
    return samples_kb


def _retriever(kb, settings: RetrievalSettings) -> HybridRetriever:
    """Another retriever with other settings over the same indexed stores."""
    reranker = CrossEncoderReranker(settings.reranker) if settings.reranker.enabled else None
    return HybridRetriever(settings, kb.embedder, kb.vectors, kb.bm25, kb.tokenizer, reranker)


def test_hybrid_finds_chinese_and_english_answers_with_every_leg_score(sample_kb) -> None:
    zh = sample_kb.retriever.run("入职满五年的正式员工每年有几天带薪年假？")
    assert zh.has_evidence
    top = zh.chunks[0]
    assert top.source.endswith("employee_handbook_zh.md") and "18 天" in top.text
    assert top.dense_rank is not None and top.bm25_rank is not None and top.bm25_score > 0
    assert 0 < top.dense_score <= 1 and math.isfinite(top.dense_z) and top.fused_score > 0
    assert top.dense_margin >= sample_kb.settings.retrieval.threshold.min_value

    en = sample_kb.retriever.run("What is the maximum upload size per file in Lumen Beacon 3.2?")
    assert en.chunks and en.chunks[0].source.endswith("release_notes_en.pdf") and en.chunks[0].page == 2


def test_a_chunk_is_found_by_its_heading(sample_kb) -> None:
    # The FAQ's price list says "Team: $12 per user per month"; the words "cost" and "plan" are only in
    # its heading ("How much does Lumen Beacon cost?"), which is indexed with it. Before, the trial
    # answer and four unrelated chunks were retrieved and the price was not among them.
    result = sample_kb.retriever.run("How much does the Lumen Beacon Team plan cost?")
    holding = [i for i, c in enumerate(result.chunks) if "$12 per user" in c.text]
    assert holding and holding[0] < 3, [c.text[:60] for c in result.chunks]
    assert result.chunks[holding[0]].section.endswith("How much does Lumen Beacon cost?")
    assert result.chunks[holding[0]].bm25_score > 0


@pytest.mark.parametrize(
    "question", ["How do I bake a chocolate cake?", "今天天气怎么样？", "Who won the football match last night?"]
)
def test_unrelated_question_gets_no_evidence(sample_kb, question: str) -> None:
    result = sample_kb.retriever.run(question)
    assert not result.has_evidence and result.note
    assert result.below_threshold, "candidates are still shown as rejected"


@pytest.mark.parametrize(
    "question",
    ["报销需要什么审批？", "新加坡数据中心什么时候上线？", "When do new hires pick up their laptop?"],
)
def test_answerable_questions_pass_the_threshold(sample_kb, question: str) -> None:
    assert sample_kb.retriever.run(question).has_evidence


def test_empty_and_huge_queries_do_not_break(sample_kb) -> None:
    assert sample_kb.retriever.run("  \x00 ").note == "empty query"
    huge = sample_kb.retriever.run("年假 " * 50_000)
    assert huge.query and len(huge.query) <= sample_kb.settings.retrieval.max_query_chars


def test_bm25_only_setting(sample_kb) -> None:
    settings = RetrievalSettings(fusion=FusionSettings(dense_weight=0.0), threshold=ThresholdSettings(score="none"))
    result = _retriever(sample_kb, settings).run("新加坡数据中心")
    assert result.chunks and all(c.dense_rank is None for c in result.chunks)
    assert result.chunks[0].source.endswith("会议纪要_gbk.txt")
    # Dense scores are still filled in for BM25-only hits (for the threshold and display).
    assert all(0 < c.dense_score <= 1 for c in result.chunks)


def test_reranker_stage_with_tiny_random_cross_encoder(sample_kb, tiny_random_cross_encoder) -> None:
    reranker = RerankerSettings(enabled=True, model=str(tiny_random_cross_encoder), max_candidates=5, max_tokens=64)
    settings = RetrievalSettings(reranker=reranker, threshold=ThresholdSettings(score="none"))
    result = _retriever(sample_kb, settings).run("upload size", top_k=10)
    scored = [c for c in result.chunks if c.rerank_score is not None]
    assert len(scored) == 5
    # The reranked head is ordered by the cross-encoder's scores, the tail keeps the fused order.
    assert [c.rerank_score for c in scored] == sorted((c.rerank_score for c in scored), reverse=True)
    assert result.chunks[:5] == scored and "rerank" in result.timings_ms


def test_reranker_over_budget_falls_back_to_fused_order(sample_kb, tiny_random_cross_encoder) -> None:
    reranker = RerankerSettings(
        enabled=True, model=str(tiny_random_cross_encoder), max_candidates=20, batch_size=1, timeout_s=1e-9
    )
    settings = RetrievalSettings(reranker=reranker, threshold=ThresholdSettings(score="none"))
    result = _retriever(sample_kb, settings).run("upload size", top_k=10)
    assert all(c.rerank_score is None for c in result.chunks)
    assert [c.fused_score for c in result.chunks] == sorted((c.fused_score for c in result.chunks), reverse=True)


def test_langchain_retriever_returns_documents(sample_kb) -> None:
    retriever = LangChainHybridRetriever(hybrid=sample_kb.retriever, top_k=2)
    docs = retriever.invoke("新加坡数据中心定于哪天上线？")
    assert docs and docs[0].metadata["source"].endswith("会议纪要_gbk.txt")
    assert {"dense_score", "bm25_score", "fused_score", "dense_z", "dense_margin"} <= set(docs[0].metadata)
