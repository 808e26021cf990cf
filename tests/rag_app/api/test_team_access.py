"""Team knowledge bases through the HTTP API, on real components (e5, Milvus Lite, BM25, SQLite state;
the LLM is the local OpenAI-compatible stub): isolation between knowledge bases, roles, tokens,
kept conversations, feedback and its export, the audit log, and a whole knowledge base deleted."""
from __future__ import annotations

import io
import json
import logging
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ingest.state.schema import DEFAULT_KB
from rag_app.web import create_app
from tests.support.paths import SAMPLES
from tests.support.stub_llm_server import StubLLMServer, answer_from_samples

ADMIN = ("admin", "admin-" + secrets.token_urlsafe(12))
ALICE = ("alice", "alice-" + secrets.token_urlsafe(12))
BOB = ("bob", "bob-" + secrets.token_urlsafe(12))
PASSWORDS = (ADMIN[1], ALICE[1], BOB[1])
HR_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"


@pytest.fixture
def team(make_kb, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[tuple]:
    """(app, client, kb ids): an admin from the configuration, two knowledge bases with one document
    each (HR: the Chinese handbook, Engineering: the release notes), alice reader of HR, bob of
    Engineering."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubLLMServer(responder=answer_from_samples) as stub:
        for name, value in {"RAG_UI__AUTH_USER": ADMIN[0], "RAG_UI__AUTH_PASSWORD": ADMIN[1],
                            "RAG_LLM__BACKEND": "openai", "RAG_LLM__BASE_URL": stub.base_url,
                            "RAG_LLM__OPENAI_MODEL": "stub"}.items():
            monkeypatch.setenv(name, value)
        kb = make_kb()
        app = create_app(kb.settings, kb, mount_ui=False)
        client = TestClient(app)
        hr = client.post("/api/kbs", json={"name": "HR", "description": "policies"}, auth=ADMIN).json()["id"]
        eng = client.post("/api/kbs", json={"name": "Engineering"}, auth=ADMIN).json()["id"]
        for user in (ALICE, BOB):
            assert client.post("/api/users", json={"name": user[0], "password": user[1]}, auth=ADMIN).status_code == 201
        for kb_id, user in ((hr, ALICE), (eng, BOB)):
            assert client.put(f"/api/kbs/{kb_id}/members", json={"user": user[0], "role": "reader"},
                              auth=ADMIN).status_code == 200
        for kb_id, name in ((hr, "employee_handbook_zh.md"), (eng, "release_notes_en.pdf")):
            files = [("files", (name, (SAMPLES / name).read_bytes()))]
            body = client.post(f"/api/kbs/{kb_id}/documents", files=files, auth=ADMIN).json()
            assert body["results"][0]["status"] == "indexed", body
        try:
            yield app, client, hr, eng
        finally:
            app.state.workspace.close()


def _source_files(body: dict) -> set[str]:
    return {s["file"] for s in body.get("sources", []) + body.get("results", [])}


def test_a_reader_sees_only_their_knowledge_base(team, caplog: pytest.LogCaptureFixture) -> None:
    app, client, hr, eng = team
    kbs = client.get("/api/kbs", auth=ALICE).json()["knowledge_bases"]
    assert [(k["id"], k["name"], k["role"]) for k in kbs] == [(hr, "HR", "reader")]

    # Everything of the other knowledge base, and of the default one, is "not found": never its data.
    source = client.get(f"/api/kbs/{eng}/documents", auth=BOB).json()["documents"][0]["source"]
    chunk = client.get(f"/api/kbs/{eng}/search", params={"query": EN_Q}, auth=BOB).json()["results"][0]["chunk_id"]
    for kb_id in (eng, DEFAULT_KB):
        refused = [
            client.get(f"/api/kbs/{kb_id}", auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/documents", auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/search", params={"query": EN_Q}, auth=ALICE),
            client.post(f"/api/kbs/{kb_id}/search", json={"query": EN_Q}, auth=ALICE),
            client.post(f"/api/kbs/{kb_id}/ask", json={"question": EN_Q}, auth=ALICE),
            client.post("/api/ask", json={"question": EN_Q, "kbs": [hr, kb_id]}, auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/documents/file", params={"source": source}, auth=ALICE),
            client.delete(f"/api/kbs/{kb_id}/documents", params={"source": source}, auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/status", auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/chunks/{chunk}/preview", auth=ALICE),
            client.get(f"/api/kbs/{kb_id}/members", auth=ALICE),
            client.delete(f"/api/kbs/{kb_id}", auth=ALICE),
        ]
        assert [r.status_code for r in refused] == [404] * len(refused), [r.text for r in refused]
        for r in refused:
            assert "release_notes" not in r.text and "Lumen" not in r.text
    # The routes directly under /api work on the default knowledge base: alice has no role there.
    assert client.get("/api/search", params={"query": EN_Q}, auth=ALICE).status_code == 404
    assert client.get("/api/documents", auth=ALICE).status_code == 404
    # Bob's document is still there, whole.
    assert [d["file"] for d in client.get(f"/api/kbs/{eng}/documents", auth=BOB).json()["documents"]] == [
        "release_notes_en.pdf"]

    # In her own knowledge base she reads and asks, and only its sources come back; she may not change it.
    found = client.get(f"/api/kbs/{hr}/search", params={"query": HR_Q}, auth=ALICE).json()
    assert _source_files(found) == {"employee_handbook_zh.md"}
    answer = client.post(f"/api/kbs/{hr}/ask", json={"question": HR_Q}, auth=ALICE).json()
    assert _source_files(answer) <= {"employee_handbook_zh.md"} and answer["sources"]
    files = [("files", ("x.md", b"# x\n"))]
    assert client.post(f"/api/kbs/{hr}/documents", files=files, auth=ALICE).status_code == 403
    hr_source = client.get(f"/api/kbs/{hr}/documents", auth=ALICE).json()["documents"][0]["source"]
    assert client.delete(f"/api/kbs/{hr}/documents", params={"source": hr_source}, auth=ALICE).status_code == 403
    assert client.post(f"/api/kbs/{hr}/sync", auth=ALICE).status_code == 403
    assert client.get(f"/api/kbs/{hr}/members", auth=ALICE).status_code == 403
    assert client.patch(f"/api/kbs/{hr}", json={"name": "Mine"}, auth=ALICE).status_code == 403
    assert client.post("/api/kbs", json={"name": "Alice's"}, auth=ALICE).status_code == 403
    assert client.post("/api/users", json={"name": "eve", "password": "password-1"}, auth=ALICE).status_code == 403
    # She may download her own knowledge base's stored upload.
    download = client.get(f"/api/kbs/{hr}/documents/file", params={"source": hr_source}, auth=ALICE)
    assert download.status_code == 200 and download.content == (SAMPLES / "employee_handbook_zh.md").read_bytes()

    # Removing her takes effect on her next request.
    assert client.delete(f"/api/kbs/{hr}/members", params={"user": ALICE[0]}, auth=ADMIN).status_code == 200
    assert client.get(f"/api/kbs/{hr}/search", params={"query": HR_Q}, auth=ALICE).status_code == 404
    assert client.get("/api/kbs", auth=ALICE).json()["knowledge_bases"] == []

    # No password is stored or logged in clear: the database holds argon2id hashes only.
    db = app.state.workspace.db
    with db.read() as conn:
        hashes = [row[0] for row in conn.execute(text("SELECT password_hash FROM users"))]
    assert len(hashes) == 3 and all(h.startswith("$argon2id$") for h in hashes)
    dump = "\n".join(hashes) + "\n".join(r.getMessage() for r in caplog.records)
    raw = Path(db.sqlite_path).read_bytes() if db.sqlite_path else b""  # type: ignore[arg-type]
    for password in PASSWORDS:
        assert password not in dump and password.encode() not in raw


def test_logins_tokens_and_wrong_credentials(team) -> None:
    _, client, hr, _ = team
    assert client.get("/api/kbs").status_code == 401
    assert client.get("/api/kbs", auth=(ALICE[0], BOB[1])).status_code == 401
    assert client.get("/api/kbs", auth=("nobody", ALICE[1])).status_code == 401
    assert client.get("/api/kbs", headers={"Authorization": "Basic !!!"}).status_code == 401
    made = client.post("/api/me/tokens", json={"name": "script"}, auth=ALICE)
    assert made.status_code == 201
    token = made.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=bearer).json()["name"] == ALICE[0]
    assert client.get(f"/api/kbs/{hr}/search", params={"query": HR_Q}, headers=bearer).status_code == 200
    listed = client.get("/api/me/tokens", headers=bearer).json()["tokens"]
    assert [t["name"] for t in listed] == ["script"] and token not in json.dumps(listed)
    assert client.delete(f"/api/me/tokens/{listed[0]['id']}", auth=BOB).status_code == 404  # not bob's
    assert client.delete(f"/api/me/tokens/{listed[0]['id']}", auth=ALICE).status_code == 200
    assert client.get("/api/me", headers=bearer).status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer " + token[:-1]}).status_code == 401
    # A changed password: the old one stops working at once (no cached login survives it).
    new = "alice-new-" + secrets.token_urlsafe(8)
    assert client.put("/api/me/password", json={"password": new}, auth=ALICE).status_code == 200
    assert client.get("/api/me", auth=ALICE).status_code == 401
    assert client.get("/api/me", auth=(ALICE[0], new)).status_code == 200
    assert client.put("/api/me/password", json={"password": "short"}, auth=(ALICE[0], new)).status_code == 422


def test_conversations_are_kept_private_and_feedback_reaches_the_owner(team) -> None:
    app, client, hr, eng = team
    first = client.post(f"/api/kbs/{hr}/ask", json={"question": HR_Q, "keep": True}, auth=ALICE).json()
    conversation, message = first["conversation_id"], first["message_id"]
    follow = client.post(f"/api/conversations/{conversation}/ask", json={"question": "那满十年呢？"}, auth=ALICE).json()
    assert follow["conversation_id"] == conversation
    kept = client.get(f"/api/conversations/{conversation}", auth=ALICE).json()
    assert kept["kbs"] == [hr] and kept["title"] == HR_Q
    assert [m["question"] for m in kept["messages"]] == [HR_Q, "那满十年呢？"]
    assert kept["messages"][1]["query"] != "那满十年呢？"  # the follow-up was searched with its context
    stored = kept["messages"][0]
    assert all(s["kb"] == hr and s["chunk_id"] for s in stored["sources"]) and stored["timings"]

    # Bob sees none of it and cannot vote on it.
    assert client.get("/api/conversations", auth=BOB).json()["conversations"] == []
    assert client.get(f"/api/conversations/{conversation}", auth=BOB).status_code == 404
    assert client.post(f"/api/conversations/{conversation}/ask", json={"question": "x"}, auth=BOB).status_code == 404
    assert client.post(f"/api/messages/{message}/feedback", json={"vote": "up"}, auth=BOB).status_code == 404

    # Rename, feedback (a second vote replaces the first), and the owner's view and exports.
    assert client.patch(f"/api/conversations/{conversation}", json={"title": "年假"}, auth=ALICE).status_code == 200
    assert client.get("/api/conversations", auth=ALICE).json()["conversations"][0]["title"] == "年假"
    assert client.post(f"/api/messages/{message}/feedback", json={"vote": "up"}, auth=ALICE).status_code == 200
    down = {"vote": "down", "comment": "missing the 10-year rule"}
    assert client.post(f"/api/messages/{message}/feedback", json=down, auth=ALICE).status_code == 200
    assert client.get(f"/api/kbs/{hr}/feedback", auth=ALICE).status_code == 403  # owners only
    items = client.get(f"/api/kbs/{hr}/feedback", auth=ADMIN).json()["feedback"]
    assert [(i["vote"], i["comment"], i["question"]) for i in items] == [(-1, down["comment"], HR_Q)]
    assert client.get(f"/api/kbs/{eng}/feedback", auth=ADMIN).json()["feedback"] == []
    again = client.get(f"/api/conversations/{conversation}", auth=ALICE).json()["messages"][0]
    assert again["feedback"] == {"vote": -1, "comment": down["comment"]}

    # An upvoted cited answer becomes a judged question (BEIR) and a training line.
    assert stored["outcome"] == "answered" and stored["citations"]
    cited = [c["chunk_id"] for c in stored["citations"]]
    workspace = app.state.workspace
    assert client.post(f"/api/messages/{message}/feedback", json={"vote": "up"}, auth=ALICE).status_code == 200
    zipped = client.get(f"/api/kbs/{hr}/feedback/export", params={"format": "judged"}, auth=ADMIN)
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        names = set(archive.namelist())
        folder = f"feedback-{hr}"
        assert {f"{folder}/corpus.jsonl", f"{folder}/queries.jsonl", f"{folder}/qrels/test.tsv"} <= names
        corpus_ids = {json.loads(line)["_id"] for line in archive.read(f"{folder}/corpus.jsonl").splitlines()}
        qrels = archive.read(f"{folder}/qrels/test.tsv").decode().splitlines()
    registry = workspace.service(hr).kb.stores()[0]
    assert corpus_ids == registry.chunk_ids()
    assert qrels[0] == "query-id\tcorpus-id\tscore" and {line.split("\t")[1] for line in qrels[1:]} == set(cited)
    lines = client.get(f"/api/kbs/{hr}/feedback/export", params={"format": "training"}, auth=ADMIN).text
    line = json.loads(lines.splitlines()[0])
    assert line["query"] == HR_Q and "18 天" in line["pos"][0]

    # Deleting the conversation removes its answers and their feedback.
    assert client.delete(f"/api/conversations/{conversation}", auth=ALICE).status_code == 200
    assert client.get(f"/api/kbs/{hr}/feedback", auth=ADMIN).json()["feedback"] == []


def test_the_audit_log_says_who_did_what(team) -> None:
    _, client, hr, _ = team
    client.put(f"/api/kbs/{hr}/members", json={"user": BOB[0], "role": "editor"}, auth=ADMIN)
    files = [("files", ("notes.md", b"# Notes\n\nThe cafeteria opens at 8.\n"))]
    assert client.post(f"/api/kbs/{hr}/documents", files=files, auth=BOB).json()["results"][0]["status"] == "indexed"
    source = next(d["source"] for d in client.get(f"/api/kbs/{hr}/documents", auth=BOB).json()["documents"]
                  if d["file"] == "notes.md")
    assert client.delete(f"/api/kbs/{hr}/documents", params={"source": source}, auth=BOB).status_code == 200
    client.patch(f"/api/kbs/{hr}", json={"description": "HR policies, 2026"}, auth=ADMIN)
    assert client.get(f"/api/kbs/{hr}/audit", auth=BOB).status_code == 403
    entries = client.get(f"/api/kbs/{hr}/audit", auth=ADMIN).json()["entries"]
    actions = [(e["actor"], e["action"]) for e in reversed(entries)]
    assert actions == [
        (ADMIN[0], "kb.create"), (ADMIN[0], "member.set"), (ADMIN[0], "documents.upload"),
        (ADMIN[0], "member.set"), (BOB[0], "documents.upload"), (BOB[0], "documents.delete"),
        (ADMIN[0], "kb.settings"),
    ]
    everything = client.get("/api/audit", auth=ADMIN).json()["entries"]
    assert {"user.create"} <= {e["action"] for e in everything}
    assert client.get("/api/audit", auth=BOB).status_code == 403


def test_deleting_a_knowledge_base_leaves_nothing_behind(team) -> None:
    app, client, hr, eng = team
    workspace = app.state.workspace
    service = workspace.service(eng)
    registry, vectors, _ = service.kb.stores()
    collection = vectors.settings.collection
    kb_dir = service.settings.kb_dir
    assert registry.chunk_count() > 0 and (kb_dir / "uploads").is_dir() and (kb_dir / "bm25").is_dir()
    answer = client.post(f"/api/kbs/{eng}/ask", json={"question": EN_Q, "keep": True}, auth=BOB).json()
    client.post(f"/api/messages/{answer['message_id']}/feedback", json={"vote": "up"}, auth=BOB)
    hr_chunks = workspace.service(hr).kb.stores()[0].chunk_count()

    assert client.delete(f"/api/kbs/{eng}", auth=BOB).status_code == 403  # a reader may not
    done = client.delete(f"/api/kbs/{eng}", auth=ADMIN)
    assert done.status_code == 200 and done.json()["chunks"] > 0

    assert collection not in workspace.default_service().kb.stores()[1].client.list_collections()
    assert not kb_dir.exists()
    db = workspace.db
    with db.read() as conn:
        for table in ("documents", "chunks", "stale_meta", "jobs", "feedback", "memberships"):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE kb = :kb"), {"kb": eng}).scalar() == 0
        for table, column in (("kb_values", "key"), ("leases", "name"), ("ticks", "name")):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} LIKE :k"),
                                {"k": f"%{eng}%"}).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM knowledge_bases WHERE id = :kb"), {"kb": eng}).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM conversations WHERE kbs LIKE :k"),
                            {"k": f"%{eng}%"}).scalar() == 0
    assert client.get(f"/api/kbs/{eng}", auth=ADMIN).status_code == 404
    assert client.get(f"/api/kbs/{eng}", auth=BOB).status_code == 404
    # The other knowledge base is untouched; the default one cannot be deleted.
    assert workspace.service(hr).kb.stores()[0].chunk_count() == hr_chunks
    found = client.get(f"/api/kbs/{hr}/search", params={"query": HR_Q}, auth=ALICE).json()
    assert found["results"]
    assert client.delete(f"/api/kbs/{DEFAULT_KB}", auth=ADMIN).status_code == 422


def test_each_knowledge_base_syncs_its_own_folder(team, tmp_path: Path) -> None:
    app, client, hr, eng = team
    folder = tmp_path / "hr-share"
    folder.mkdir()
    (folder / "travel.md").write_text("# Travel\n\nTrain tickets over 500 yuan need a manager's approval.\n",
                                      encoding="utf-8")
    change = {"sync_folder": str(folder), "sync_cron": "0 3 * * *"}
    assert client.patch(f"/api/kbs/{hr}", json=change, auth=ALICE).status_code == 403  # owners may not either
    assert client.patch(f"/api/kbs/{hr}", json={"sync_folder": str(tmp_path / "nope")}, auth=ADMIN).status_code == 422
    assert client.patch(f"/api/kbs/{hr}", json={**change, "sync_cron": "every day"}, auth=ADMIN).status_code == 422
    assert client.patch(f"/api/kbs/{hr}", json=change, auth=ADMIN).json()["sync_folder"] == str(folder)
    assert client.post(f"/api/kbs/{eng}/sync", auth=ADMIN).status_code == 409  # Engineering has no folder
    done = client.post(f"/api/kbs/{hr}/sync", params={"wait": "true"}, auth=ADMIN)
    assert done.status_code == 200, done.text
    files = {d["file"] for d in client.get(f"/api/kbs/{hr}/documents", auth=ADMIN).json()["documents"]}
    assert files == {"employee_handbook_zh.md", "travel.md"}
    assert [d["file"] for d in client.get(f"/api/kbs/{eng}/documents", auth=ADMIN).json()["documents"]] == [
        "release_notes_en.pdf"]
    assert client.get("/api/documents", auth=ADMIN).json()["documents"] == []  # nor the default one
    found = client.get(f"/api/kbs/{hr}/search", params={"query": "train ticket approval"}, auth=ALICE).json()
    assert found["results"][0]["file"] == "travel.md"
    # The schedule is the knowledge base's own; its status says so.
    status = client.get(f"/api/kbs/{hr}/status", auth=ADMIN).json()
    assert status["sync"]["folder"] == str(folder.resolve()) and status["milvus"]["collection"] == f"chunks_{hr}"
    # A folder file is downloadable by a reader; a path outside what the app keeps is not.
    source = next(d["source"] for d in client.get(f"/api/kbs/{hr}/documents", auth=ALICE).json()["documents"]
                  if d["file"] == "travel.md")
    assert client.get(f"/api/kbs/{hr}/documents/file", params={"source": source}, auth=ALICE).status_code == 200
    assert client.get(f"/api/kbs/{hr}/documents/file", params={"source": "/etc/passwd"}, auth=ALICE).status_code == 404
