"""What the ik_llama backend adds over the wheel's bindings: its sampler (numpy, no model) and the
reuse of the previous prompt's cache (the real packaged GGUF)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rag_app.llm import LLMSettings, LLMUnavailableError, make_llm
from rag_app.llm.ik_llama_backend import IkLlamaLLM, _sample
from tests.support.paths import REPO

RULES = ("You answer questions about the Lumen Beacon product from the notes below, in one sentence.\n"
         "Notes: Lumen Beacon 3.2 raised the upload limit to 200 MB per file and needs PostgreSQL 14 or later. "
         "The Free plan keeps 30 days of history; the Team plan keeps one year. ") * 3


def test_greedy_sampling_takes_the_largest_logit() -> None:
    logits = np.array([0.1, 3.0, 2.9, -1.0])
    assert _sample(logits, 0.0, np.random.default_rng(0)) == 1


def test_sampling_stays_inside_the_head_the_filters_keep() -> None:
    rng = np.random.default_rng(0)
    logits = np.full(1000, -10.0)
    logits[[7, 8]] = [5.0, 4.8]   # two close candidates, the rest far below min-p of the best
    drawn = {_sample(logits, 1.0, rng) for _ in range(200)}
    assert drawn == {7, 8}
    # At a low temperature a clear favourite always wins; the same seed draws the same tokens.
    logits[8] = 3.0
    assert {_sample(logits, 0.1, rng) for _ in range(50)} == {7}
    first = [_sample(logits, 1.0, np.random.default_rng(3)) for _ in range(20)]
    assert first == [_sample(logits, 1.0, np.random.default_rng(3)) for _ in range(20)]


@pytest.fixture(scope="module")
def llm() -> IkLlamaLLM:
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    backend = make_llm(LLMSettings(backend="ik_llama", temperature=0.0, max_new_tokens=30, num_threads=2,
                                   context_window=1024), cache)
    assert isinstance(backend, IkLlamaLLM)
    backend.warm_up()
    return backend


def _ask(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": RULES}, {"role": "user", "content": question}]


def test_a_prompt_read_from_the_cache_answers_as_one_read_from_scratch(llm: IkLlamaLLM) -> None:
    question = "How long does the Free plan keep history?"
    llm.generate([{"role": "user", "content": "Hi"}], max_new_tokens=2)  # the cache holds another prompt
    fresh = llm.generate(_ask(question))
    assert llm.last_prompt_reused < 10
    llm.generate(_ask("Which PostgreSQL version is needed?"))  # same rules, another question
    cached = llm.generate(_ask(question))
    assert llm.last_prompt_reused > 200  # the rules were not read again
    assert cached == fresh and "30 days" in cached, (fresh, cached)


def test_a_prompt_longer_than_the_context_is_a_clear_error(llm: IkLlamaLLM) -> None:
    with pytest.raises(LLMUnavailableError, match="context window is 1024"):
        llm.generate(_ask("Summarise: " + "the notes " * 2000))
    assert "30 days" in llm.generate(_ask("How long does the Free plan keep history?"))  # still usable


def test_a_scored_stream_gives_each_tokens_probability(llm: IkLlamaLLM) -> None:
    probs: list[tuple[str, float]] = []
    streamed = "".join(llm.stream_scored(_ask("How long does the Free plan keep history?"), probs))
    assert "30 days" in streamed and "".join(piece for piece, _ in probs) == streamed
    assert all(0.0 < p <= 1.0 for _, p in probs)
    # The packaged 0.5B reads "30" off the rules' own sentence: each of its digits is a sure pick.
    digits = [p for piece, p in probs if piece.strip().isdigit()]
    assert digits and min(digits) > 0.5, probs
    assert llm.generate(_ask("How long does the Free plan keep history?")) == streamed  # stream() is the same


def test_a_given_reply_is_read_with_the_probabilities_its_generation_had(llm: IkLlamaLLM) -> None:
    probs: list[tuple[str, float]] = []
    messages = _ask("How long does the Free plan keep history?")
    streamed = "".join(llm.stream_scored(messages, probs))
    reread = llm.reply_probabilities(messages, streamed)
    assert [piece for piece, _ in reread] == [piece for piece, _ in probs]
    assert all(abs(a - b) < 0.02 for (_, a), (_, b) in zip(reread, probs)), (reread, probs)
