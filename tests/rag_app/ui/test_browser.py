"""End to end in a real browser: the app served by rag-app (its own process) on a loopback port, driven with headless
Debian Chromium through Playwright. Real e5 + Milvus Lite + BM25; the LLM is the local stub server,
streaming answers that cite [1] in several deltas.

Upload a Chinese and an English sample through the UI, ask in both languages, see the streamed answer
and the right source, get the refusal for an uncovered question, delete a document and see it gone.
Screenshots (chat.png, knowledge_base.png) go to $RAG_SCREENSHOT_DIR, default the pytest tmp dir;
`RAG_SCREENSHOT_DIR=docs/screenshots pytest tests/rag_app/ui/test_browser.py` refreshes the README's pictures.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.app_process import ingest, running_app, write_config
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.support.browser import wait_file_listed as _wait_file_listed
from tests.support.browser import wait_text as _wait_text
from tests.support.paths import SAMPLES
from tests.support.stub_llm_server import StubLLMServer, is_rewrite_request

ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size per file in Lumen Beacon 3.2?"
CAKE_Q = "How do I bake a chocolate cake?"
ZH_DELTAS = ["根据员工手册，", "入职满五年的正式员工", "每年享有 18 天带薪年假 [1]。"]
EN_DELTAS = ["Since version 3.2, ", "the maximum upload size ", "is 200 MB per file [1]."]
# Indexed before the browser starts: a realistic corpus around the two documents the test uploads.
BACKGROUND = ["product_faq_en.md", "security_policy_en.html", "onboarding_en.docx", "会议纪要_gbk.txt"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"),
]


def _respond(body: dict) -> list[str]:
    user = body["messages"][-1]["content"]
    if is_rewrite_request(body):  # a follow-up rewrite: these questions are standalone already
        return [user.split("Follow-up question:", 1)[1].split("\n")[0].strip()]
    return ZH_DELTAS if "年假" in user else EN_DELTAS


@pytest.fixture
def stub():
    # Deltas spaced out so the streaming is visible in the page.
    with StubLLMServer(responder=_respond, delay_s=0.6) as server:
        yield server


@pytest.fixture
def server(e5_model_dir: Path, stub: StubLLMServer, tmp_path: Path):
    """The real app, as ``rag-app`` serves it, in its own process (see tests/support/app_process.py for
    why not in this one), over a data directory that already holds the background documents."""
    config = write_config(tmp_path, e5_model_dir.parent, stub.base_url)
    out = ingest(config, [SAMPLES / n for n in BACKGROUND])
    assert f"{len(BACKGROUND)} indexed" in out, out
    with running_app(config, tmp_path / "server.log") as url:
        yield url


@pytest.fixture
def page(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.requests_seen = []  # type: ignore[attr-defined]
        page.on("request", lambda r: page.requests_seen.append(r.url))  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _chat_text(page) -> str:
    return page.locator("#chatbot").inner_text()


def _ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    page.locator("#ask-btn").click()


def test_upload_ask_refuse_delete_in_the_browser(page, server: str, stub: StubLLMServer, tmp_path: Path) -> None:
    screenshots = Path(os.environ.get("RAG_SCREENSHOT_DIR") or tmp_path)
    screenshots.mkdir(parents=True, exist_ok=True)
    page.goto(server)
    page.get_by_role("tab", name="Documents").click()

    # --- upload a Chinese and an English document ------------------------------------------------
    uploads = [SAMPLES / "employee_handbook_zh.md", SAMPLES / "release_notes_en.pdf"]
    page.locator("#kb-upload input[type=file]").set_input_files([str(p) for p in uploads])
    for p in uploads:
        _wait_file_listed(page, "#kb-upload", p.name)
    page.locator("#index-btn").click()
    _wait_text(page, "#ingest-status", "Done")
    results = page.locator("#ingest-results").inner_text()
    for p in uploads:
        assert p.name in results
    assert results.count("indexed") >= 2 and "failed" not in results
    docs = page.locator("#documents").inner_text()
    for name in ["employee_handbook_zh.md", "release_notes_en.pdf", *BACKGROUND]:
        assert name in docs
    page.screenshot(path=str(screenshots / "knowledge_base.png"), full_page=True)

    # --- ask in Chinese: streamed answer, cited source -------------------------------------------
    page.get_by_role("tab", name="Chat").click()
    # Record every rendering of the chat (a MutationObserver cannot miss a short-lived state, unlike polling).
    page.evaluate(
        """() => { window.__chatTexts = [];
          const el = document.querySelector('#chatbot');
          new MutationObserver(() => window.__chatTexts.push(el.innerText))
            .observe(el, {subtree: true, childList: true, characterData: true}); }"""
    )
    _ask(page, ZH_Q)
    _wait_text(page, "#chatbot", "每年享有 18 天带薪年假")
    seen = page.evaluate("() => window.__chatTexts")
    # Streamed: the page showed the first delta before the last one had arrived.
    assert any(ZH_DELTAS[0] in t and ZH_DELTAS[-1][:8] not in t for t in seen), seen[-3:]
    _wait_text(page, "#sources", "cited")
    cited = page.locator("#sources .src-card.cited").first
    assert "employee_handbook_zh.md" in cited.inner_text() and "18 天" in cited.inner_text()

    # --- ask in English -------------------------------------------------------------------------
    _ask(page, EN_Q)
    _wait_text(page, "#chatbot", "is 200 MB per file")
    page.wait_for_function(
        "() => { const c = document.querySelector('#sources .src-card.cited'); return !!c && c.innerText.includes('release_notes_en.pdf'); }"
    )
    cited = page.locator("#sources .src-card.cited").first
    assert "p. 2" in cited.inner_text() and "200 MB" in cited.inner_text()
    page.screenshot(path=str(screenshots / "chat.png"), full_page=True)
    assert (screenshots / "chat.png").stat().st_size > 10_000 and (screenshots / "knowledge_base.png").is_file()

    # --- not covered: the refusal, visibly "no evidence", and no answer request to the LLM ------------
    answers_before = len(stub.answer_bodies())
    _ask(page, CAKE_Q)
    _wait_text(page, "#chatbot", "could not find anything relevant")
    page.locator("#no-evidence").wait_for(state="visible")
    assert len(stub.answer_bodies()) == answers_before

    # --- delete the Chinese document --------------------------------------------------------------
    page.get_by_role("tab", name="Documents").click()
    page.locator("#delete-select input").click()
    page.locator("#delete-select input").fill("employee_handbook")
    page.get_by_role("option", name="employee_handbook_zh.md").click()
    page.locator("#delete-btn").click()
    _wait_text(page, "#delete-status", "Deleted")
    page.wait_for_function("() => !document.querySelector('#documents').innerText.includes('employee_handbook_zh.md')")
    assert "release_notes_en.pdf" in page.locator("#documents").inner_text()

    # --- asking about it now refuses (in Chinese) ----------------------------------------------------
    page.get_by_role("tab", name="Chat").click()
    page.locator("#clear-btn").click()
    _ask(page, ZH_Q)
    _wait_text(page, "#chatbot", "知识库中没有找到")
    page.locator("#no-evidence").wait_for(state="visible")

    # --- status tab: counts agree, no secrets ---------------------------------------------------------
    page.get_by_role("tab", name="Status").click()
    _wait_text(page, "#status-info", "consistent")
    # Calibration is off in tests (conftest): the row says which fallback cutoff is used and why.
    _wait_text(page, "#status-info", "fallback threshold dense_margin >= 0.023")

    # Everything the page loaded came from the app itself (no CDN, no analytics).
    origin = urlsplit(server).netloc
    external = [u for u in page.requests_seen if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc != origin]  # type: ignore[attr-defined]
    assert external == []



# --- the answer layer's honesty in the page -----------------------------------------------------------

FOLLOWUP = "那不满五年的呢？"
NON_ANSWER_Q = "入职满五年的正式员工没休完的带薪年假可以折现吗？"
INVENTED_Q = "入职满五年的正式员工的年假由谁审批？"
INVENTED = "由董事会每季度统一审批，最多 30 天。"  # neither the board nor 30 days is in the handbook


def _honesty_respond(body: dict) -> list[str]:
    user = body["messages"][-1]["content"]
    if is_rewrite_request(body):  # what the small model did: the previous *answer* as the rewrite
        return ["入职满五年的正式员工，每年享有 18 天带薪年假。"]
    if "不满五年" in user:
        return ["入职不满五年的正式员工", "每年享有 12 天带薪年假 [1]。"]
    if "折现" in user:  # a non-answer that cites
        return ["资料中没有提到", "年假能否折现 [1]。"]
    if "审批" in user:  # an invented answer: no passage backs it
        return [INVENTED]
    return ZH_DELTAS if "年假" in user else EN_DELTAS


@pytest.fixture
def honesty_server(e5_model_dir: Path, tmp_path: Path):
    with StubLLMServer(responder=_honesty_respond, delay_s=0.6) as stub:
        config = write_config(tmp_path, e5_model_dir.parent, stub.base_url,
                              answer={"followup_query": "llm_checked"}, ui={"max_upload_mb": 1})
        # Both answers of the double-submit step must be backed by a passage, else they are withheld.
        out = ingest(config, [SAMPLES / n for n in [*BACKGROUND, "employee_handbook_zh.md", "release_notes_en.pdf"]])
        assert "6 indexed" in out, out
        with running_app(config, tmp_path / "server.log") as url:
            yield url, stub


def _browser_page(url: str):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 950}, locale="en-US")
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return pw, browser, page


def test_one_question_at_a_time_honest_citations_and_follow_ups(honesty_server, tmp_path: Path) -> None:
    url, stub = honesty_server
    pw, browser, page = _browser_page(url)
    try:
        # --- a second question while the first streams: Ask and Enter are off, nothing is lost ---
        _ask(page, EN_Q)
        page.wait_for_function("() => document.querySelector('#ask-btn').disabled")
        assert page.locator("#question textarea").is_disabled()
        _wait_text(page, "#chatbot", "is 200 MB per file")
        page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")
        _ask(page, ZH_Q)
        _wait_text(page, "#chatbot", "每年享有 18 天带薪年假")
        page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")
        chat = _chat_text(page)
        assert "is 200 MB per file" in chat and "每年享有 18 天带薪年假" in chat
        # Plain words on the cards, raw scores behind "details".
        card = page.locator("#sources .src-card").first
        assert "meaning" in card.inner_text() and "keywords" in card.inner_text()
        assert "dense_margin" not in card.locator(".src-meta").inner_text()

        # --- a follow-up whose model rewrite is the previous answer still finds the right chunk ---
        _ask(page, FOLLOWUP)
        _wait_text(page, "#chatbot", "每年享有 12 天带薪年假")
        _wait_text(page, "#sources", "your question joined to the previous one")
        assert "12 天" in page.locator("#sources").inner_text()
        page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")

        # --- a non-answer that cites [1] carries no citation badge ---
        page.locator("#clear-btn").click()
        _ask(page, NON_ANSWER_Q)
        _wait_text(page, "#chatbot", "年假能否折现")
        page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")
        assert page.locator("#sources .src-card.cited").count() == 0
        assert page.locator("#sources .badge").count() == 0

        # --- an answer no passage backs is withheld; what the model wrote is shown as a note ---
        page.locator("#clear-btn").click()
        _ask(page, INVENTED_Q)
        _wait_text(page, "#chatbot", "资料中找不到能支持这个回答的内容")
        page.wait_for_function("() => !document.querySelector('#ask-btn').disabled")
        assert INVENTED not in _chat_text(page)
        assert INVENTED in page.locator("#sources #not-answered").inner_text()
        # The passages are labelled related reading, never cited.
        assert page.locator("#sources .src-card.cited").count() == 0
        assert page.locator("#sources .badge:not(.related)").count() == 0
        assert page.locator("#sources .badge.related").count() >= 1

        # --- an oversize upload and a refused type: their reasons in the results table ---
        page.get_by_role("tab", name="Documents").click()
        big = tmp_path / "big_notes.txt"
        big.write_text("年假制度说明。" * 200_000, encoding="utf-8")  # ~4 MB, over the 1 MB limit
        archive = tmp_path / "bundle.zip"
        archive.write_bytes(b"PK\x03\x04" + b"\0" * 100)
        workbook = tmp_path / "prices.xlsx"  # indexed; what it leaves out is said in its row
        workbook.write_bytes(_workbook_with_a_hidden_sheet())
        page.locator("#kb-upload input[type=file]").set_input_files([str(big), str(archive), str(workbook)])
        _wait_file_listed(page, "#kb-upload", "big_notes.txt")
        page.locator("#index-btn").click()
        _wait_text(page, "#ingest-status", "Done")
        results = page.locator("#ingest-results").inner_text()
        assert "big_notes.txt" in results and "over the 1 MB limit" in results, results
        assert "bundle.zip" in results and "failed" in results, results
        assert "prices.xlsx" in results and "hidden sheets not indexed: 'Margins'" in results, results
    finally:
        browser.close()
        pw.stop()


def _workbook_with_a_hidden_sheet() -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["产品", "单价"])
    book.active.append(["路由器", 4380])
    hidden = book.create_sheet("Margins")
    hidden.append(["margin", 0.37])
    hidden.sheet_state = "hidden"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
