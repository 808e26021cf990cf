"""The two llama.cpp backends (ik_llama.cpp, the default, and mainline llama.cpp through xllamacpp) on
the real packaged GGUF: each loads in a second or two, so these run in the default suite."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rag_app.llm import LLMBackend, LLMSettings, LLMUnavailableError, make_llm
from rag_app.llm.gguf_backend import option_probabilities
from rag_app.llm.ik_llama_backend import IkLlamaLLM
from rag_app.llm.llamacpp_backend import LlamaCppLLM
from tests.support.paths import REPO

ZH_CONTEXT = "光迹科技（Lumen Labs）于2019年在杭州成立，创始人是陈伟。公司主要生产仓储机器人使用的光学传感器，现有员工120人。"
SYSTEM = "只根据下面的资料回答，用一句话。\n资料：" + ZH_CONTEXT
BACKENDS = {"ik_llama": IkLlamaLLM, "llamacpp": LlamaCppLLM}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def llm(request: pytest.FixtureRequest) -> LLMBackend:
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    settings = LLMSettings(backend=request.param, temperature=0.0, max_new_tokens=40, num_threads=2,
                           context_window=4096)
    backend = make_llm(settings, cache)
    assert isinstance(backend, BACKENDS[request.param])
    backend.warm_up()
    return backend


def _ask(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def test_streams_an_answer_from_the_packaged_gguf(llm: LLMBackend) -> None:
    deltas = list(llm.stream(_ask("光迹科技是在哪个城市成立的？")))
    assert len(deltas) > 1 and "杭州" in "".join(deltas), deltas
    assert llm.name.endswith(":qwen2.5-coder-0.5b-instruct") and llm.load_seconds is not None
    # Stop strings end the answer before them (the answerer stops at echoed source markers).
    answer = llm.generate(_ask("光迹科技是在哪个城市成立的？"), stop=["杭州"])
    assert "杭州" not in answer


def test_leaving_a_stream_early_frees_the_model(llm: LLMBackend) -> None:
    it = llm.stream(_ask("请详细介绍光迹科技。"), max_new_tokens=200)
    next(it)
    it.close()
    assert llm._gen_lock.acquire(timeout=10)  # the generation was cancelled, not run to 200 tokens
    llm._gen_lock.release()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(llm.generate(_ask("公司有多少员工？"), max_new_tokens=16)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and results[0] == results[1] and "120" in results[0], results


def test_first_token_probabilities_separate_a_stated_fact_from_a_missing_one(llm: LLMBackend) -> None:
    def yes(question: str) -> float:
        probs = llm.choice_probabilities(
            _ask(f"问题：{question}\n资料中是否明确包含这个问题的答案？只回答“是”或“否”。"), ["是", "否"]
        )
        assert probs is not None and 0 < probs["是"] + probs["否"] <= 1.0001
        return probs["是"] / (probs["是"] + probs["否"])

    stated, missing = yes("光迹科技是在哪个城市成立的？"), yes("光迹科技的创始人毕业于哪所大学？")
    assert stated > missing, (stated, missing)


def test_option_probabilities_merge_spellings() -> None:
    probs = option_probabilities({"Yes": 0.5, " yes": 0.1, "No": 0.2, "Maybe": 0.2}, ["Yes", "No"])
    assert probs == pytest.approx({"Yes": 0.6, "No": 0.2})


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_missing_model_file_is_a_clear_error(tmp_path: Path, backend: str) -> None:
    bad = make_llm(LLMSettings(backend=backend, model=str(tmp_path / "nope.gguf")), tmp_path)
    with pytest.raises(LLMUnavailableError, match="need a .gguf file"):
        bad.warm_up()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    with pytest.raises(LLMUnavailableError, match="could not load"):
        make_llm(LLMSettings(backend=backend, model=str(broken)), tmp_path).warm_up()
