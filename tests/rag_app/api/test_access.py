"""Login and secrets on the real combined app that ``rag-app`` serves (``rag_app.web.create_app``: the
JSON API with the Gradio UI mounted at ``/``), driven with TestClient over a real knowledge base (e5,
Milvus Lite, BM25); the LLM is the local OpenAI-compatible stub. The password, the Milvus token and
the LLM key come from the environment, as in production."""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from rag_app.web import create_app
from tests.support.paths import SAMPLES
from tests.support.stub_llm_server import StubLLMServer

USER = "team"
# Random per run, with a recognisable prefix: found in a log only if it leaked there.
PASSWORD = "pw-" + secrets.token_urlsafe(12)
MILVUS_TOKEN = "root:mt-" + secrets.token_urlsafe(12)
API_KEY = "sk-" + secrets.token_urlsafe(16)
WRONG_PASSWORD = PASSWORD[:-1] + ("x" if PASSWORD[-1] != "x" else "y")  # a near miss must not be logged either
SECRETS = (PASSWORD, MILVUS_TOKEN, API_KEY, WRONG_PASSWORD, MILVUS_TOKEN.split(":", 1)[1])
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"


@pytest.fixture
def stub() -> Iterator[StubLLMServer]:
    with StubLLMServer(deltas=["The maximum upload size ", "is 200 MB per file [1]."]) as server:
        yield server


@pytest.fixture
def secured(make_kb, stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """(app, client): every log record from start-up on is captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for name, value in {
        "RAG_UI__AUTH_USER": USER,
        "RAG_UI__AUTH_PASSWORD": PASSWORD,
        "RAG_MILVUS__TOKEN": MILVUS_TOKEN,
        "RAG_LLM__API_KEY": API_KEY,
        "RAG_LLM__BACKEND": "openai",
        "RAG_LLM__BASE_URL": stub.base_url,
        "RAG_LLM__OPENAI_MODEL": "stub",
    }.items():
        monkeypatch.setenv(name, value)
    kb = make_kb()  # Settings() reads the environment: Milvus Lite is opened with the token
    kb.indexer.ingest_paths([SAMPLES / "release_notes_en.pdf"])
    app = create_app(kb.settings, kb)
    with TestClient(app) as client:  # runs the lifespan: Gradio's queue starts as under uvicorn
        yield app, client
    app.state.service.close(stores=False)


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}"


def test_secrets_come_from_the_environment_and_are_masked(secured) -> None:
    app, _ = secured
    settings = app.state.service.settings
    assert settings.ui.auth_enabled and settings.ui.auth_password.get_secret_value() == PASSWORD
    assert settings.milvus.token.get_secret_value() == MILVUS_TOKEN
    assert settings.llm.get_api_key() == API_KEY
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        _assert_no_secret(text, "the settings' repr/dump")


def test_every_api_route_but_health_refuses_unauthenticated_requests(secured) -> None:
    app, client = secured
    # Routers are included lazily: iter_route_contexts walks into them.
    routes = [
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path and route.path.startswith("/api")
        for method in sorted((route.methods or set()) - {"HEAD"})
    ]
    # The docs and schema are behind the login too; a route added later is covered automatically.
    assert {("GET", "/api/docs"), ("GET", "/api/openapi.json"), ("POST", "/api/ask"), ("GET", "/api/search"),
            ("POST", "/api/documents"), ("DELETE", "/api/documents"), ("GET", "/api/status")} <= set(routes)
    for method, path in routes:
        for auth in (None, (USER, WRONG_PASSWORD), ("admin", PASSWORD), ("", "")):
            resp = client.request(method, path, auth=auth)
            if path == "/api/health":
                assert resp.status_code == 200
                continue
            assert resp.status_code == 401, (method, path, auth, resp.status_code)
            assert resp.headers["www-authenticate"].startswith("Basic")
    # The right credentials: in.
    ok = (USER, PASSWORD)
    assert client.get("/api/documents", auth=ok).json()["documents"][0]["file"] == "release_notes_en.pdf"
    assert client.get("/api/docs", auth=ok).status_code == 200
    assert "/api/search" in client.get("/api/openapi.json", auth=ok).json()["paths"]
    found = client.get("/api/search", params={"query": EN_Q}, auth=ok).json()
    assert found["results"][0]["file"] == "release_notes_en.pdf"
    answer = client.post("/api/ask", json={"question": EN_Q}, auth=ok).json()
    assert answer["answer"] == "The maximum upload size is 200 MB per file [1]." and answer["citations"]


def test_ui_page_queue_upload_and_files_refuse_unauthenticated_requests(secured, stub: StubLLMServer) -> None:
    app, client = secured
    source = app.state.service.documents()[0]["source"]
    join = {"data": [EN_Q, [], "", [], ["default"]], "fn_index": 0, "session_hash": "s3ss10n"}
    # Not logged in: the page is the login form (none of the app's content), the rest is 401.
    page = client.get("/")
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    for marker in ("kb-upload", "status-info", "release_notes_en.pdf"):
        assert marker not in page.text
    refused = [
        client.get("/config"),
        client.get("/gradio_api/info"),
        client.post("/gradio_api/queue/join", json=join),
        client.get("/gradio_api/queue/data", params={"session_hash": "s3ss10n"}),
        client.post("/gradio_api/upload", files=[("files", ("a.md", b"# hi\n"))]),
        client.get(f"/gradio_api/file={source}"),
        client.post("/gradio_api/call/ask", json={"data": [EN_Q, [], "", [], ["default"]]}),
        client.post("/gradio_api/run/ask", json={"data": [EN_Q, [], "", [], ["default"]]}),
        # HTTP basic credentials are the API's login, not a UI session.
        client.get("/config", auth=(USER, PASSWORD)),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert stub.requests == []

    # A wrong password is refused; the right one gives a session cookie that opens everything.
    assert client.post("/login", data={"username": USER, "password": WRONG_PASSWORD}).status_code >= 400
    assert client.get("/config").status_code == 401
    assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
    page = client.get("/")
    assert "kb-upload" in page.text and "status-info" in page.text
    config = client.get("/config")
    assert config.status_code == 200
    # The chat's answer function (Ask and Enter first lock the inputs, then answer, then unlock).
    join["fn_index"] = next(i for i, d in enumerate(config.json()["dependencies"]) if d["api_name"] == "ask")
    assert client.post("/gradio_api/upload", files=[("files", ("a.md", b"# hi\n"))]).status_code == 200
    # A chat through the UI's queue, as the browser does it: join, then read the event stream.
    joined = client.post("/gradio_api/queue/join", json=join)
    assert joined.status_code == 200 and joined.json()["event_id"]
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": "s3ss10n"}) as events:
        messages = []
        for line in events.iter_lines():
            if line.startswith("data: "):
                messages.append(json.loads(line[6:]))
                if messages[-1].get("msg") == "process_completed":
                    break
    assert messages[-1]["success"], messages[-1]
    chat = messages[-1]["output"]["data"][1]
    assert "200 MB per file [1]" in json.dumps(chat, ensure_ascii=False)
    assert len(stub.answer_bodies()) == 1


def test_no_secret_in_logs_status_or_ui_config(secured, stub: StubLLMServer, caplog: pytest.LogCaptureFixture) -> None:
    app, client = secured
    # A failed and a good login on each side, an ask that calls the LLM with the key, the status.
    client.get("/api/status", auth=(USER, WRONG_PASSWORD))
    client.post("/login", data={"username": USER, "password": WRONG_PASSWORD})
    client.post("/login", data={"username": USER, "password": PASSWORD})
    status = client.get("/api/status", auth=(USER, PASSWORD))
    assert status.status_code == 200
    answer = client.post("/api/ask", json={"question": EN_Q}, auth=(USER, PASSWORD))
    assert answer.status_code == 200 and not answer.json()["refused"]
    with client.stream("POST", "/api/ask", json={"question": EN_Q, "stream": True}, auth=(USER, PASSWORD)) as sse:
        assert "event: final" in sse.read().decode()
    # The key did reach the LLM server, as a header, from the environment.
    assert [r["headers"].get("Authorization") for r in stub.requests] == [f"Bearer {API_KEY}"] * 2

    _assert_no_secret(json.dumps(status.json()), "/api/status")
    _assert_no_secret(client.get("/config").text, "the UI config")
    # Start-up (Milvus opened with the token, the UI built with the password) ran in the fixture.
    records = caplog.get_records("setup") + caplog.get_records("call")
    names = {r.name for r in records}
    assert "rag_app.service.knowledge_base" in names  # "knowledge base ready": the start-up is in the capture
    assert any(r.levelno == logging.DEBUG for r in records) and any(n.startswith("httpcore") for n in names)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(pathname)s:%(lineno)d %(message)s")
    for r in records:  # the formatted line, and what a handler with another format could print
        _assert_no_secret(f"{formatter.format(r)} {r.args!r} {r.__dict__!r}", f"log record {r.name}")
