"""Follow-ups: the checks a rewrite must pass, and the joined fallback (no model needed)."""
from __future__ import annotations

from rag_app.answering.followup import (
    combined_query,
    is_self_contained,
    prompt_question,
    rewrite_problem,
    standalone_query,
)
from rag_app.llm.base import ChatMessage
from rag_app.retrieval.protocols import Tokenizer

TRAIN_Q = "普通员工出差坐火车可以坐什么座位？"
TRAIN_A = "普通员工出差坐火车可以坐高铁二等座或动车二等座。[1]"
HISTORY = [ChatMessage(role="user", content=TRAIN_Q), ChatMessage(role="assistant", content=TRAIN_A)]
EN_HISTORY = [
    ChatMessage(role="user", content="How long is the battery life of the Lumen Beacon?"),
    ChatMessage(role="assistant", content="The battery lasts up to 18 months [1]."),
]


def test_a_rewrite_that_repeats_the_previous_answer_is_rejected(samples_kb) -> None:
    tok: Tokenizer = samples_kb.tokenizer
    # What the packaged 0.5B model did in the bug report (3 of 3 follow-ups).
    assert rewrite_problem("普通员工出差坐火车可以坐高铁二等座或动车二等座。", "那住宿呢？", HISTORY, tok.tokenize)
    assert "drops the follow-up's words" in rewrite_problem(TRAIN_Q, "那住宿呢？", HISTORY, tok.tokenize)
    assert "repeats an earlier answer" in rewrite_problem(
        "普通员工出差坐火车可以坐高铁二等座或动车二等座，住宿呢？", "那住宿呢？", HISTORY, tok.tokenize)
    assert "not a question" in rewrite_problem("住宿标准。", "那住宿呢？", HISTORY, tok.tokenize)
    assert "much longer" in rewrite_problem(
        "普通员工出差的时候住宿的酒店标准是什么，一线城市和二线城市分别是多少钱一晚，可以报销吗，需要发票吗？",
        "那住宿呢？", HISTORY, tok.tokenize)
    assert rewrite_problem("普通员工出差住宿标准是什么？", "那住宿呢？", HISTORY, tok.tokenize) == ""
    assert rewrite_problem("What is the warranty of the Lumen Beacon?", "And the warranty?", EN_HISTORY,
                           tok.tokenize) == ""
    assert "drops" in rewrite_problem("How long is the battery life?", "And the warranty?", EN_HISTORY, tok.tokenize)


def test_the_fallback_joins_the_previous_question(samples_kb) -> None:
    tok = samples_kb.tokenizer.tokenize
    assert combined_query("那住宿呢？", HISTORY) == f"{TRAIN_Q} 那住宿呢？"
    # The LLM is asked the follow-up in its context, not the joined text (it would answer both).
    assert prompt_question("那住宿呢？", HISTORY, "zh") == f"那住宿呢？（上一个问题：{TRAIN_Q}）"
    assert prompt_question("And the warranty?", EN_HISTORY, "en").startswith("And the warranty? (previous question:")
    found = standalone_query("那住宿呢？", HISTORY, tok, lambda: TRAIN_A)
    assert found.method == "combined" and found.text == f"{TRAIN_Q} 那住宿呢？" and found.rejected
    found = standalone_query("那住宿呢？", HISTORY, tok, lambda: "出差住宿标准是什么？")
    assert found.method == "rewritten" and found.text == "出差住宿标准是什么？"
    assert standalone_query("那住宿呢？", HISTORY, tok, None).method == "combined"
    assert standalone_query("那住宿呢？", [], tok, None).method == "as_asked"


def test_a_self_contained_follow_up_is_searched_as_asked(samples_kb) -> None:
    tok = samples_kb.tokenizer.tokenize
    assert is_self_contained("入职满五年的正式员工每年有几天带薪年假？", tok)
    assert not is_self_contained("那住宿呢？", tok) and not is_self_contained("And the warranty?", tok)
    assert not is_self_contained("What about its warranty period in Europe?", tok)
    found = standalone_query("入职满五年的正式员工每年有几天带薪年假？", HISTORY, tok, None)
    assert found.method == "as_asked"
