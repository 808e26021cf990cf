"""The JSON API through FastAPI's TestClient on real components (Milvus Lite, e5, BM25), the LLM being
the local OpenAI-compatible stub: upload, list, ask (JSON and SSE), delete, login."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_app.config import UISettings
from rag_app.llm import LLMSettings
from rag_app.web import create_app
from tests.support.paths import SAMPLES
from tests.support.stub_llm_server import StubLLMServer

ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"


def _respond(body: dict) -> list[str]:
    question = body["messages"][-1]["content"]
    if "年假" in question:
        return ["入职满五年的正式员工", "每年有 18 天带薪年假 [1]。"]
    return ["The maximum upload size ", "is 200 MB per file [1]."]


@pytest.fixture
def stub():
    with StubLLMServer(responder=_respond) as server:
        yield server


@pytest.fixture
def kb(make_kb, stub: StubLLMServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return make_kb(llm=LLMSettings(backend="openai", base_url=stub.base_url, openai_model="stub"))


def _upload(client: TestClient, *names: str, **kw) -> dict:
    files = [("files", (n, (SAMPLES / n).read_bytes())) for n in names]
    resp = client.post("/api/documents", files=files, **kw)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_upload_list_ask_delete(kb, stub: StubLLMServer) -> None:
    app = create_app(kb.settings, kb)
    client = TestClient(app)
    try:
        assert client.get("/api/health").json() == {"status": "ok"}
        assert client.get("/").status_code == 200  # the Gradio UI is mounted at /

        body = _upload(client, "employee_handbook_zh.md", "release_notes_en.pdf")
        assert body["state"] == "done"
        assert [(r["file"], r["status"]) for r in body["results"]] == [
            ("employee_handbook_zh.md", "indexed"),
            ("release_notes_en.pdf", "indexed"),
        ]
        uploads = (kb.settings.data_dir / "uploads").resolve()
        for r in body["results"]:
            assert Path(r["source"]).parent == uploads and Path(r["source"]).is_file()
        # The job is in the state database too (every replica sees it) and on the Status tab.
        (job,) = client.get("/api/jobs").json()["jobs"]
        assert (job["kind"], job["state"], job["this_replica"]) == ("upload", "done", True)
        assert [f["status"] for f in job["files"]] == ["indexed", "indexed"]
        assert client.get("/api/status").json()["recent_jobs"][0]["state"] == "done"

        # Re-upload: unchanged; bad type and a hostile name: rejected / confined to uploads/.
        again = _upload(client, "employee_handbook_zh.md")
        assert again["results"][0]["status"] == "unchanged"
        odd = client.post(
            "/api/documents",
            files=[
                ("files", ("../../../evil.md", b"# Evil\n\nThe launch code is 0000.\n")),
                ("files", ("tool.exe", b"MZ\x00\x00")),
            ],
        ).json()["results"]
        assert odd[0]["status"] == "indexed" and Path(odd[0]["source"]).parent == uploads
        assert odd[0]["file"] == "evil.md"
        assert odd[1]["status"] == "failed" and "unsupported" in odd[1]["detail"]
        assert not any(p.name.startswith("tool") for p in uploads.iterdir())

        docs = client.get("/api/documents").json()["documents"]
        assert sorted(d["file"] for d in docs) == ["employee_handbook_zh.md", "evil.md", "release_notes_en.pdf"]
        by_file = {d["file"]: d for d in docs}
        assert by_file["release_notes_en.pdf"]["type"] == "pdf" and by_file["release_notes_en.pdf"]["chunks"] >= 2

        # Ask (JSON): the answer, its citations mapped to chunks, and the sources quoted.
        resp = client.post("/api/ask", json={"question": ZH_Q})
        assert resp.status_code == 200, resp.text
        ans = resp.json()
        assert ans["answer"] == "入职满五年的正式员工每年有 18 天带薪年假 [1]。" and not ans["refused"]
        assert ans["language"] == "zh" and ans["sources"]
        (cite,) = ans["citations"]
        assert cite["number"] == 1 and cite["file"] == "employee_handbook_zh.md" and "18 天" in cite["text"]
        assert ans["cited_sources"] == [by_file["employee_handbook_zh.md"]["source"]]

        # Ask (SSE): query, sources, deltas, final.
        with client.stream("POST", "/api/ask", json={"question": EN_Q, "stream": True}) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            events = [
                (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
                for block in sse.read().decode().strip().split("\n\n")
            ]
        kinds = [k for k, _ in events]
        assert kinds[:2] == ["query", "sources"] and kinds[-1] == "final" and kinds.count("delta") == 2
        final = events[-1][1]
        assert final["answer"] == "The maximum upload size is 200 MB per file [1]."
        assert final["citations"][0]["file"] == "release_notes_en.pdf" and final["citations"][0]["page"] == 2

        # Not covered: the refusal, and the LLM is not asked.
        n_requests = len(stub.requests)
        cake = client.post("/api/ask", json={"question": "How do I bake a chocolate cake?"}).json()
        assert cake["refused"] and cake["answer"].startswith("Sorry") and cake["sources"] == []
        assert len(stub.requests) == n_requests

        # Delete: gone from the list and from all three stores; its file too; asking now refuses.
        source = by_file["employee_handbook_zh.md"]["source"]
        resp = client.delete("/api/documents", params={"source": source})
        assert resp.status_code == 200 and resp.json()["chunks_removed"] == by_file["employee_handbook_zh.md"]["chunks"]
        assert "employee_handbook_zh.md" not in [d["file"] for d in client.get("/api/documents").json()["documents"]]
        assert not Path(source).exists()
        status = client.get("/api/status").json()
        counts = status["counts"]
        assert counts["registry_chunks"] == counts["milvus_chunks"] == counts["bm25_chunks"]
        assert status["calibration"]["state"].startswith("fallback threshold")  # tests switch calibration off
        assert status["retrieval"]["threshold"] == "dense_margin >= 0.023 (fallback)"
        assert client.delete("/api/documents", params={"source": source}).status_code == 404
        after = client.post("/api/ask", json={"question": ZH_Q}).json()
        assert after["refused"] and after["answer"] == kb.settings.answer.refusal_zh
    finally:
        app.state.service.close(stores=False)


def test_login_required_when_configured(kb, stub: StubLLMServer) -> None:
    settings = kb.settings.model_copy(update={"ui": UISettings(auth_user="team", auth_password="s3cret-pass")})
    app = create_app(settings, kb)
    client = TestClient(app)
    try:
        assert client.get("/api/health").status_code == 200  # liveness stays open
        for method, url, kw in [
            ("GET", "/api/documents", {}),
            ("GET", "/api/status", {}),
            ("POST", "/api/ask", {"json": {"question": ZH_Q}}),
            ("DELETE", "/api/documents?source=x", {}),
        ]:
            resp = client.request(method, url, **kw)
            assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
        assert client.get("/api/documents", auth=("team", "wrong")).status_code == 401
        assert client.get("/api/documents", auth=("admin", "s3cret-pass")).status_code == 401
        resp = client.get("/api/documents", auth=("team", "s3cret-pass"))
        assert resp.status_code == 200 and resp.json() == {"documents": []}
        assert stub.requests == []
        # The UI has its own login (Gradio): its config is not served without it.
        assert client.get("/config").status_code == 401
        status = client.get("/api/status", auth=("team", "s3cret-pass")).json()
        assert "s3cret-pass" not in json.dumps(status)
    finally:
        app.state.service.close(stores=False)


def test_scheduled_folder_sync_shows_in_status(make_kb, tmp_path: Path) -> None:
    """The app's scheduler syncs a folder on a 1-second interval; the API's status and the UI's
    status table show the last run and its result."""
    import time

    from rag_app.config import SchedulerSettings
    from rag_app.ui.render import sync_rows

    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "faq.md").write_bytes((SAMPLES / "product_faq_en.md").read_bytes())
    kb = make_kb(scheduler=SchedulerSettings(enabled=True, folder=str(folder), interval_seconds=1))
    app = create_app(kb.settings, kb, mount_ui=False)
    client = TestClient(app)
    try:
        deadline = time.monotonic() + 60
        sync = client.get("/api/status").json()["sync"]
        while not sync["last_finished"] and time.monotonic() < deadline:
            time.sleep(0.5)
            sync = client.get("/api/status").json()["sync"]
        assert sync["last_ok"] is True and sync["scheduled"] and sync["next_run"]
        # With a 1 s interval a second, "unchanged" run may already have finished by this poll.
        assert re.search(r"\b1 (indexed|unchanged)\b", sync["last_summary"]), sync["last_summary"]
        assert [d["file"] for d in client.get("/api/documents").json()["documents"]] == ["faq.md"]
        rows = "\n".join(sync_rows(sync))
        assert str(folder) in rows and "every" in rows
        assert "Last sync" in rows and "ok" in rows

        (folder / "faq.md").unlink()  # the next run removes it
        done = client.post("/api/sync", params={"wait": "true"}).json()
        assert done["last_ok"] is True
        assert client.get("/api/documents").json()["documents"] == []
    finally:
        app.state.service.close(stores=False)
