"""The load test's own code (benchmarks/bench_load.py) on a short run: 5 simulated users for ~5 s,
chatting (JSON and SSE) and searching at once against the real combined app served by uvicorn on a
loopback port (samples knowledge base: e5, Milvus Lite, BM25; login on; the LLM is the stub server).
It asserts that no request failed; the timing figures belong in BENCHMARKS.md, not here."""
from __future__ import annotations

import importlib.util
import logging
import secrets
import sys

import httpx
import pytest

from rag_app.config import UISettings
from rag_app.llm import LLMSettings
from rag_app.web import create_app
from tests.support.paths import REPO
from tests.support.stub_llm_server import StubLLMServer

BENCH = REPO / "benchmarks" / "bench_load.py"


def _bench_load():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


bench_load = _bench_load()


def test_sse_check_rejects_broken_streams() -> None:
    ok = 'event: query\ndata: {"q": 1}\n\nevent: final\ndata: {"answer": "x"}\n\n'
    assert bench_load._check_sse(ok) == ""
    assert "ended with" in bench_load._check_sse('event: query\ndata: {}\n\nevent: error\ndata: {}\n\n')
    assert "malformed" in bench_load._check_sse("event: final\n\n")
    assert bench_load._check_sse("") == "empty stream"
    assert bench_load.percentile([5, 1, 4, 2, 3], 50) == 3 and bench_load.percentile([1, 2, 3, 4], 95) == 4


def test_five_users_chat_and_search_at_once_without_a_failed_request(
    samples_kb, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    password = "pw-" + secrets.token_urlsafe(12)
    with StubLLMServer(delay_s=0.005) as stub:
        settings = samples_kb.settings.model_copy(
            update={
                "llm": LLMSettings(backend="openai", base_url=stub.base_url, openai_model="stub"),
                "ui": UISettings(auth_user="load", auth_password=password),
            }
        )
        app = create_app(settings, samples_kb)
        try:
            with caplog.at_level(logging.INFO), bench_load.serve_in_thread(app) as base_url:
                assert httpx.get(f"{base_url}/api/search", params={"query": "x"}).status_code == 401
                result = bench_load.run_load(base_url, users=5, duration_s=5, auth=("load", password))
        finally:
            app.state.service.close(stores=False)

    assert result.samples and not result.failures, [s.detail for s in result.failures[:5]]
    assert {s.kind for s in result.samples} == set(bench_load.KINDS)
    assert stub.answer_bodies()  # covered questions reached the LLM; refusals did not need it
    rows = {r.kind: r for r in bench_load.summarize(result)}
    assert rows["all"].count == len(result.samples) == sum(rows[k].count for k in bench_load.KINDS)
    assert rows["all"].failures == 0 and rows["all"].p50_s <= rows["all"].p95_s <= rows["all"].max_s
    assert "| `GET /api/search` |" in bench_load.table(list(rows.values()))
    # The real server's logs (uvicorn access log included) never carry the password.
    assert any(r.name == "uvicorn.access" for r in caplog.records)
    assert password not in caplog.text
