""""The documents don't say": after retrieval passed, do the quoted sources hold the answer?

Retrieval can tell "this topic is in the knowledge base" but not "this answer is": a question about
a person the corpus mentions, asking for a fact it never states, passes any retrieval cutoff. The
check asks the answering LLM itself, with the very prompt the answer will use (the rules and the
numbered sources) and a yes/no question as the last turn, and reads the first token's probabilities:
``P(yes) / (P(yes) + P(no))``. Nothing is generated; a backend that caches the prompt prefix
(llama.cpp) reads only the last turn again for the answer, so the check costs a few percent of it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from rag_app.config import AnswerCheckSettings
from rag_app.llm.base import ChatMessage, LLMBackend

from .language import Language
from .prompt import Prompt, defuse

log = logging.getLogger(__name__)

# The verdict question. The options are single tokens in Qwen's (and most BPE) vocabularies.
_VERDICT = {
    "zh": ("问题：{question}\n资料中是否明确包含这个问题的答案？只回答“是”或“否”。", "是", "否"),
    "en": (
        "Question: {question}\n"
        'Do the sources explicitly contain the answer to this question? Answer only "Yes" or "No".',
        "Yes",
        "No",
    ),
}


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on one prompt. ``score`` is None when the backend cannot read token probabilities
    (the check is then skipped, never a refusal)."""

    score: float | None
    cutoff: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.score is None or self.score >= self.cutoff

    def describe(self) -> str:
        if self.score is None:
            return "answer check unavailable with this LLM backend"
        verb = "≥" if self.passed else "<"
        return f"answer check {self.score:.2f} {verb} {self.cutoff:.2f}"


def verdict_messages(prompt: Prompt, question: str, language: Language) -> list[ChatMessage]:
    """The answer's own system turn (rules + sources: a cached prefix), then the yes/no question."""
    template = _VERDICT[language][0]
    return [prompt.messages[0], ChatMessage(role="user", content=template.format(question=defuse(question.strip())))]


class AnswerChecker:
    """Whether the quoted sources contain the answer, from the LLM's first-token probabilities."""

    def __init__(self, settings: AnswerCheckSettings) -> None:
        self.settings = settings

    def cutoff(self, language: Language) -> float:
        return self.settings.min_yes_zh if language == "zh" else self.settings.min_yes_en

    def run(self, llm: LLMBackend, prompt: Prompt, question: str, language: Language) -> AnswerCheck:
        t0 = time.perf_counter()
        _, yes, no = _VERDICT[language]
        probs = llm.choice_probabilities(verdict_messages(prompt, question, language), [yes, no])
        score: float | None = None
        if probs is not None and probs[yes] + probs[no] > 0:
            score = probs[yes] / (probs[yes] + probs[no])
        check = AnswerCheck(score, self.cutoff(language), time.perf_counter() - t0)
        log.info("%s for %r (%.2f s)", check.describe(), question, check.seconds)
        return check
