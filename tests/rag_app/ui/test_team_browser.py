"""Team knowledge bases in a real browser (Debian's Chromium through Playwright) against the real app
in its own process (e5, Milvus Lite, BM25, SQLite state; the LLM is the local stub):

an admin creates two knowledge bases and two users and uploads to each; each user asks and sees only
their own sources; a conversation survives a page reload and a server restart; a thumbs-down is
stored and appears in the export; the retrieval test tab shows the ranked chunks; opening a PDF
citation shows its page with the passage highlighted.

``RAG_SCREENSHOT_DIR=docs/screenshots pytest tests/rag_app/ui/test_team_browser.py`` refreshes the
README's pictures of these screens.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app_process import Replica, write_config
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.support.browser import wait_file_listed as _wait_file_listed
from tests.support.browser import wait_text as _wait_text
from tests.support.paths import SAMPLES
from tests.support.stub_llm_server import StubLLMServer, answer_from_samples

ADMIN = ("admin", "admin-" + secrets.token_urlsafe(10))
ALICE = ("alice", "alice-" + secrets.token_urlsafe(10))
BOB = ("bob", "bob-" + secrets.token_urlsafe(10))
ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"),
]


@pytest.fixture
def app_config(e5_model_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    with StubLLMServer(responder=answer_from_samples) as stub:
        config = write_config(tmp_path, e5_model_dir.parent, stub.base_url)
        yield config, {"RAG_UI__AUTH_USER": ADMIN[0], "RAG_UI__AUTH_PASSWORD": ADMIN[1]}


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(browser, url: str, user: tuple[str, str]):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.get_by_label("username").fill(user[0])
    page.get_by_label("password").fill(user[1])
    page.get_by_role("button", name="Login").click()
    _wait_text(page, "#signed-in", f"Signed in as {user[0]}")
    return page


def _choose_kb(page, name: str) -> None:
    page.locator("#kb-select input").click()
    page.get_by_role("option", name=name, exact=True).click()


def _kb_options(page) -> list[str]:
    page.locator("#kb-select input").click()
    options = sorted(text.replace("✓", "").strip() for text in page.get_by_role("option").all_inner_texts())
    page.keyboard.press("Escape")
    return options


def _upload(page, name: str) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#kb-upload input[type=file]").set_input_files([str(SAMPLES / name)])
    _wait_file_listed(page, "#kb-upload", name)
    page.locator("#index-btn").click()
    _wait_text(page, "#ingest-status", "Done")
    _wait_text(page, "#documents", name)


def _ask(page, question: str, expect: str) -> None:
    page.get_by_role("tab", name="Chat").click()
    page.locator("#question textarea").fill(question)
    page.locator("#ask-btn").click()
    _wait_text(page, "#chatbot", expect)
    page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")


def test_two_teams_in_the_browser(app_config, browser, tmp_path: Path) -> None:
    config, env = app_config
    shots = Path(os.environ.get("RAG_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    server = Replica(config, tmp_path / "server.log", env).wait_healthy()
    try:
        # --- the admin: two knowledge bases, two users, one document each -------------------------------
        admin = _sign_in(browser, server.url, ADMIN)
        admin.get_by_role("tab", name="Team").click()
        for name in ("HR", "Engineering"):
            admin.locator("#new-kb-name input").fill(name)
            admin.locator("#new-kb-btn").click()
            _wait_text(admin, "#admin-status", f"Created {name}")
        for user in (ALICE, BOB):
            admin.locator("#new-user-name input").fill(user[0])
            admin.locator("#new-user-password input").fill(user[1])
            admin.locator("#new-user-btn").click()
            _wait_text(admin, "#admin-status", f"Created user {user[0]}")
        for kb, user, document in (("HR", ALICE, "employee_handbook_zh.md"), ("Engineering", BOB, "release_notes_en.pdf")):
            _choose_kb(admin, kb)
            admin.get_by_role("tab", name="Team").click()
            _wait_text(admin, "#team-kb-note", f"owner of {kb}")
            admin.locator("#member-name input").fill(user[0])
            admin.locator("#member-set").click()
            _wait_text(admin, "#kb-members", user[0])
            _upload(admin, document)
        admin.get_by_role("tab", name="Team").click()
        _wait_text(admin, "#kb-members", BOB[0])
        admin.get_by_text("Audit log").click()
        _wait_text(admin, "#kb-audit", "documents.upload")
        admin.wait_for_timeout(3000)  # the picture only: let the tab's refresh settle
        admin.screenshot(path=str(shots / "team.png"), full_page=True)

        # --- each user sees only their own knowledge base and sources -----------------------------------
        alice = _sign_in(browser, server.url, ALICE)
        assert _kb_options(alice) == ["HR"]
        _ask(alice, ZH_Q, "18 天带薪年假")
        sources = alice.locator("#sources").inner_text()
        assert "employee_handbook_zh.md" in sources and "release_notes" not in sources
        alice.locator("#feedback-comment textarea").fill("should say who counts as 正式员工")
        alice.locator('#chatbot button[aria-label="Dislike"]').last.click()
        _wait_text(alice, "#feedback-status", "not helpful")

        bob = _sign_in(browser, server.url, BOB)
        assert _kb_options(bob) == ["Engineering"]
        _ask(bob, EN_Q, "200 MB per file")
        assert "employee_handbook" not in bob.locator("#sources").inner_text()
        # Opening the PDF citation: its page, the cited passage highlighted, and the text around it.
        bob.locator("#open-source label").filter(has_text="release_notes_en.pdf").first.click()
        bob.locator("#preview-page img").wait_for(state="visible")
        _wait_text(bob, "#preview-context", "release_notes_en.pdf")
        assert bob.locator("#preview-context .ctx-chunk.cited").count() == 1
        bob.screenshot(path=str(shots / "source_preview.png"), full_page=True)

        # --- the retrieval test tab (the admin owns every knowledge base) -------------------------------
        _choose_kb(admin, "Engineering")
        admin.get_by_role("tab", name="Retrieval test").click()
        admin.locator("#retrieval-query textarea").fill(EN_Q)
        admin.locator("#retrieval-btn").click()
        _wait_text(admin, "#retrieval-summary", "passed the threshold")
        table = admin.locator("#retrieval-results").inner_text()
        assert "release_notes_en.pdf" in table and "yes" in table and "&gt;" not in table
        assert ">=" in admin.locator("#retrieval-summary").inner_text()
        admin.screenshot(path=str(shots / "retrieval_test.png"), full_page=True)

        # --- the conversation survives a reload ---------------------------------------------------------
        alice.reload()
        _wait_text(alice, "#signed-in", "Signed in as alice")
        alice.locator("#conversations label").filter(has_text=ZH_Q[:10]).first.click()
        _wait_text(alice, "#chatbot", "18 天带薪年假")
    finally:
        server.stop()

    # --- ... and a server restart ---------------------------------------------------------------------
    server = Replica(config, tmp_path / "server2.log", env).wait_healthy()
    try:
        alice = _sign_in(browser, server.url, ALICE)
        alice.locator("#conversations label").filter(has_text=ZH_Q[:10]).first.click()
        _wait_text(alice, "#chatbot", "18 天带薪年假")
        _wait_text(alice, "#sources", "employee_handbook_zh.md")
        alice.screenshot(path=str(shots / "conversations.png"), full_page=True)

        # The thumbs-down is stored: the owner sees it, and it is in the export.
        admin = _sign_in(browser, server.url, ADMIN)
        _choose_kb(admin, "HR")
        admin.get_by_role("tab", name="Team").click()
        admin.get_by_text("Feedback on answers").click()
        _wait_text(admin, "#kb-feedback", "should say who counts as 正式员工")
        hr = next(k["id"] for k in httpx.get(f"{server.url}/api/kbs", auth=ADMIN).json()["knowledge_bases"]
                  if k["name"] == "HR")
        exported = httpx.get(f"{server.url}/api/kbs/{hr}/feedback/export", auth=ADMIN, timeout=60)
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            verdicts = [json.loads(line) for line in archive.read(f"feedback-{hr}/feedback.jsonl").splitlines()]
            qrels = archive.read(f"feedback-{hr}/qrels/test.tsv").decode().splitlines()
        assert [(v["vote"], v["question"], v["comment"]) for v in verdicts] == [
            (-1, ZH_Q, "should say who counts as 正式员工")]
        assert qrels[1:] and all(line.endswith("\t0") for line in qrels[1:])  # judged: not relevant
        assert httpx.get(f"{server.url}/api/kbs/{hr}/feedback", auth=BOB).status_code == 404
    finally:
        server.stop()
