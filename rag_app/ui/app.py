"""The Gradio UI: Chat, Knowledge base and Status tabs over one :class:`RagService`.

Works offline: analytics are off unless enabled in the settings, and the theme uses fonts bundled
with Gradio plus system CJK fonts (no Google Fonts / CDN fetches).
"""
from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

# Before gradio is imported anywhere: no usage analytics / version pings from a self-hosted app.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ingest.loaders import SUPPORTED_EXTENSIONS  # noqa: E402
from rag_app.answering import (  # noqa: E402
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    NumberedSource,
    QueryEvent,
    SourcesEvent,
)
from rag_app.answering.prompt import chunk_scores  # noqa: E402

from .services import FileResult, IngestJob, RagService  # noqa: E402

log = logging.getLogger(__name__)

_POLL_S = 0.3
_TUNING_STAGES = {
    "starting": "Starting",
    "sample": "Sampling chunks",
    "questions": "Writing questions",
    "negatives": "Mining hard negatives",
    "train": "Training",
    "check": "Checking on held-out questions",
    "save": "Saving",
}
_SNIPPET_CHARS = 500

CSS = """
#sources .src-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin-bottom: 8px; background: var(--background-fill-secondary); }
#sources .src-card.cited { border-color: var(--color-accent); }
#sources .src-head { font-weight: 600; }
#sources .src-meta { font-size: 0.85em; opacity: 0.8; margin: 2px 0 4px; }
#sources .src-snippet { font-size: 0.9em; white-space: pre-wrap; margin: 0; }
#sources .badge { display: inline-block; font-size: 0.75em; padding: 0 6px; border-radius: 6px;
  background: var(--color-accent); color: white; margin-left: 6px; }
#sources .no-evidence { border: 1px solid #d97706; background: #fef3c7; color: #78350f; border-radius: 8px;
  padding: 10px 12px; }
#sources .query-used { font-size: 0.85em; opacity: 0.8; margin-bottom: 6px; }
#sources .llm-error { border: 1px solid #dc2626; background: #fee2e2; color: #7f1d1d; border-radius: 8px;
  padding: 10px 12px; }
"""

_FONTS = [
    gr.themes.LocalFont("Source Sans Pro"),
    "PingFang SC",
    "Microsoft YaHei",
    "Noto Sans CJK SC",
    "WenQuanYi Micro Hei",
    "ui-sans-serif",
    "system-ui",
    "sans-serif",
]


def make_theme() -> gr.themes.Base:
    return gr.themes.Default(font=_FONTS)


# --------------------------------------------------------------------------------------------------
# Rendering helpers (everything from documents is escaped: uploaded text is untrusted)
# --------------------------------------------------------------------------------------------------


def _fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_sources(
    sources: list[NumberedSource],
    cited: dict[int, bool] | None = None,  # cited source number -> inferred by the app
    *,
    query_note: str = "",
    no_evidence: str = "",
    error: str = "",
) -> str:
    parts: list[str] = []
    if query_note:
        parts.append(f'<div class="query-used">{html.escape(query_note)}</div>')
    if error:
        parts.append(f'<div class="llm-error" id="llm-error">{html.escape(error)}</div>')
    if no_evidence:
        parts.append(
            '<div class="no-evidence" id="no-evidence"><b>No evidence found</b> — nothing in the knowledge base '
            "is relevant enough to this question, so it was not sent to the language model."
            f"<br><small>{html.escape(no_evidence)}</small></div>"
        )
    for s in sources:
        c = s.chunk
        is_cited = cited is not None and s.number in cited
        scores = chunk_scores(c)
        meta = " · ".join(
            f"{name} {_fmt_score(value)}" for name, value in scores.items() if value is not None
        )
        text = " ".join(c.text.split())
        limit = _SNIPPET_CHARS if is_cited or cited is None else 200
        snippet = text[:limit] + ("…" if len(text) > limit else "")
        badge = ""
        if is_cited:
            inferred = bool(cited and cited.get(s.number))
            tip = ' title="The model gave no citation; the app matched the answer to this source."' if inferred else ""
            badge = f'<span class="badge"{tip}>{"cited (inferred)" if inferred else "cited"}</span>'
        location = f" — {html.escape(c.location)}" if c.location else ""
        parts.append(
            f'<div class="src-card{" cited" if is_cited else ""}" data-source="{html.escape(s.file)}">'
            f'<div class="src-head">[{s.number}] {html.escape(s.file)}{location}{badge}</div>'
            f'<div class="src-meta">{html.escape(meta)}</div>'
            f'<p class="src-snippet">{html.escape(snippet)}</p></div>'
        )
    if not parts:
        parts.append('<div class="src-empty">Sources for the answer appear here.</div>')
    return "\n".join(parts)


def _results_rows(results: list[FileResult]) -> list[list[str]]:
    return [[r.name, r.status, r.detail] for r in results]


def _sync_rows(sync: dict[str, Any]) -> list[str]:
    """Status-table rows for the scheduled folder sync."""
    if not sync["folder"]:
        return ["| Folder sync | not configured (`scheduler.folder`, `scheduler.cron`) |"]
    rows = [f"| Folder sync | `{sync['folder']}` · {sync['schedule']} |"]
    if sync["running"]:
        rows.append("| Sync | running now |")
    if sync["next_run"]:
        rows.append(f"| Next sync | {sync['next_run']} |")
    if sync["last_finished"]:
        outcome = "ok" if sync["last_ok"] else "**failed**"
        rows.append(f"| Last sync | {sync['last_finished']} · {outcome} · {sync['last_summary']} |")
    else:
        rows.append("| Last sync | never ran |")
    return rows


def _job_status(job: IngestJob, started: float) -> str:
    done, total = job.progress
    current = next((r.name for r in job.snapshot() if r.status == "indexing"), "")
    if job.state == "queued":
        return f"Waiting for the ingestion worker… ({total} file(s))"
    if job.state == "running":
        return f"Indexing {done + 1} of {total}: {current}…" if current else f"Indexing… {done}/{total}"
    counts: dict[str, int] = {}
    for r in job.snapshot():
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
    if job.state == "failed":
        return f"**Failed** after {time.time() - started:.1f} s: {job.error} ({summary})"
    return f"**Done** in {time.time() - started:.1f} s: {summary}"


def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------------------------
# The Blocks
# --------------------------------------------------------------------------------------------------


def build_ui(service: RagService) -> gr.Blocks:
    settings = service.settings

    data_dir = settings.data_dir.resolve()

    def shown_source(source: str) -> str:
        # Uploads live in the data dir: show "uploads/x.md", not the server's absolute layout.
        try:
            return str(Path(source).resolve().relative_to(data_dir))
        except (ValueError, OSError):
            return source

    def documents_rows() -> list[list[Any]]:
        return [
            [d["file"], d["type"], d["chunks"], _fmt_time(d["indexed_at"]), shown_source(d["source"])]
            for d in service.documents()
        ]

    def delete_choices() -> gr.Dropdown:
        return gr.Dropdown(choices=_choices(), value=None)

    def _choices() -> list[tuple[str, str]]:
        # Label with the date too: two uploads may share a file name.
        return [(f"{d['file']} ({_fmt_time(d['indexed_at'])})", d["source"]) for d in service.documents()]

    def status_markdown() -> str:
        st = service.status()
        c = st["counts"]
        llm = st["llm"]
        llm_line = f"`{llm['backend']}` · model `{llm['model']}`"
        if llm.get("base_url"):
            llm_line += f" · endpoint `{llm['base_url']}`"
        llm_line += " · loaded" if llm["loaded"] else " · not loaded yet (loads on the first question)"
        agree = c["registry_chunks"] == c["milvus_chunks"] == c["bm25_chunks"]
        return "\n".join(
            [
                "| | |",
                "|---|---|",
                f"| Embedding model | `{st['embedder']['model']}` ({st['embedder']['dim']}-d) |",
                f"| LLM | {llm_line} |",
                f"| Milvus | {st['milvus']['mode']} · `{st['milvus']['uri']}` · collection `{st['milvus']['collection']}` |",
                f"| Relevance threshold | `{st['retrieval']['threshold']}` · top {st['retrieval']['top_k']} |",
                f"| Documents (registry) | {c['documents']} |",
                f"| Chunks: registry / Milvus / BM25 | {c['registry_chunks']} / {c['milvus_chunks']} / {c['bm25_chunks']}"
                f" {'(consistent)' if agree else '**differ**: run `rag-ingest --check`'} |",
                f"| Ingestion jobs waiting | {st['ingestion_queue']} |",
                *_sync_rows(st["sync"]),
            ]
        )

    def sync_now() -> str:
        service.sync_now(wait=False)
        return status_markdown()

    # --- reranker tuning -----------------------------------------------------------------------------
    def tuning_markdown() -> str:
        run = service.tuning
        active = service.tuned_models.active()
        on = f"Tuned reranker on: `{active.version}` (blend {active.blend:g})." if active else "No tuned reranker on."
        if run is None:
            return on
        minutes = (time.time() - run.started) / 60
        if run.state == "running":
            step = f" {run.done}/{run.total}" if run.total else ""
            detail = f" ({html.escape(run.detail)})" if run.detail else ""
            return f"**{_TUNING_STAGES.get(run.stage, run.stage)}**{step}{detail} · {minutes:.0f} min\n\n{on}"
        if run.state == "failed":
            return f"**Tuning failed:** {html.escape(run.error)}\n\n{on}"
        return "\n".join(f"- {html.escape(line)}" for line in run.report) + f"\n\n{on}"

    def tune(generator: str) -> Iterator[str]:
        try:
            run = service.start_tuning(generator)
        except RuntimeError as exc:
            yield f"**{html.escape(str(exc))}**"
            return
        while not run.finished.wait(1.0):
            yield tuning_markdown()
        yield tuning_markdown()

    def rollback_tuned() -> str:
        try:
            version = service.rollback_tuning()
        except Exception as exc:
            return f"**Could not roll back:** {html.escape(str(exc))}"
        return f"Rolled back: now `{version}`.\n\n" + tuning_markdown()

    # --- chat -----------------------------------------------------------------------------------------
    def ask(message: str, chat: list[dict[str, Any]], history: list[dict[str, str]]) -> Iterator[tuple[Any, ...]]:
        question = (message or "").strip()
        if not question:
            yield gr.update(), chat, history, gr.update()
            return
        chat = list(chat or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield "", chat, history, render_sources([], query_note="Searching…")
        answer = ""
        sources: list[NumberedSource] = []
        query_note = ""
        for event in service.answerer.stream(question, history):
            if isinstance(event, QueryEvent):
                query_note = f"Searched for: {event.query}" if event.rewritten else ""
                if event.truncated:  # say so: the answer covers only the start of a very long question
                    cut = f"Only the first {settings.answer.max_question_tokens} tokens of the question were used."
                    query_note = f"{query_note} · {cut}" if query_note else cut
            elif isinstance(event, SourcesEvent):
                sources = event.sources
                if sources:
                    yield "", chat, history, render_sources(sources, query_note=query_note)
            elif isinstance(event, DeltaEvent):
                answer += event.text
                chat[-1] = {"role": "assistant", "content": answer}
                yield "", chat, history, gr.update()
            elif isinstance(event, FinalEvent):
                chat[-1] = {"role": "assistant", "content": event.answer or answer}
                history = list(history or []) + [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": event.answer},
                ]
                panel = render_sources(
                    event.sources,
                    {c.number: c.inferred for c in event.citations},
                    query_note=query_note,
                    no_evidence=event.note if event.refused else "",
                )
                yield "", chat, history, panel
            elif isinstance(event, ErrorEvent):
                chat[-1] = {"role": "assistant", "content": f"**Error:** {event.message}"}
                yield "", chat, history, render_sources(sources, query_note=query_note, error=event.message)

    def clear_chat() -> tuple[Any, ...]:
        return [], [], render_sources([])

    # --- knowledge base ------------------------------------------------------------------------------
    def index_files(files: list[str] | None) -> Iterator[tuple[Any, ...]]:
        paths = [Path(f) for f in (files or [])]
        if not paths:
            yield "Choose one or more files first.", gr.update(), gr.update(), gr.update(), gr.update()
            return
        # Gradio keeps the client's file name as the temp file's base name; the service sanitises it
        # and stores the bytes under its own name (the client's name never becomes a path).
        job = service.submit_uploads([(p.name, p) for p in paths])
        started = time.time()
        while not job.wait(_POLL_S):
            yield _job_status(job, started), _results_rows(job.snapshot()), gr.update(), gr.update(), gr.update()
        yield _job_status(job, started), _results_rows(job.snapshot()), documents_rows(), delete_choices(), None

    def reindex() -> Iterator[tuple[Any, ...]]:
        job = service.submit_reindex()
        started = time.time()
        while not job.wait(_POLL_S):
            yield _job_status(job, started), _results_rows(job.snapshot()), gr.update(), gr.update()
        yield _job_status(job, started), _results_rows(job.snapshot()), documents_rows(), delete_choices()

    def delete_document(source: str | None) -> tuple[Any, ...]:
        if not source:
            return "Choose a document to delete.", gr.update(), gr.update()
        try:
            removed = service.delete(source)
        except Exception as exc:
            log.exception("delete failed")
            return f"**Could not delete:** {exc}", gr.update(), gr.update()
        name = html.escape(Path(source).name)
        msg = f"Deleted **{name}** ({removed} chunks)." if removed is not None else f"{name} is not indexed."
        return msg, documents_rows(), delete_choices()

    def refresh_documents() -> tuple[Any, ...]:
        return documents_rows(), delete_choices()

    # --- layout ------------------------------------------------------------------------------------------
    with gr.Blocks(title="Knowledge base Q&A", analytics_enabled=settings.ui.analytics) as demo:
        gr.Markdown("## Knowledge base Q&A\nAnswers come only from your documents, with numbered citations.")
        history_state = gr.State([])
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="Chat", height=480, elem_id="chatbot", buttons=["copy"])
                        with gr.Row():
                            question = gr.Textbox(
                                placeholder="Ask a question in English or Chinese… / 用中文或英文提问…",
                                show_label=False,
                                scale=8,
                                elem_id="question",
                                lines=1,
                                max_lines=4,
                            )
                            send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-btn")
                        clear = gr.Button("New conversation", size="sm", elem_id="clear-btn")
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources_panel = gr.HTML(render_sources([]), elem_id="sources")
            with gr.Tab("Knowledge base", id="kb"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2):
                        upload = gr.File(
                            label=f"Upload documents ({', '.join(sorted(SUPPORTED_EXTENSIONS))};"
                            f" up to {settings.ui.max_upload_mb} MB each, {settings.ui.max_files_per_request} per batch)",
                            file_count="multiple",
                            file_types=sorted(SUPPORTED_EXTENSIONS),
                            type="filepath",
                            elem_id="kb-upload",
                        )
                        index_btn = gr.Button("Index uploaded files", variant="primary", elem_id="index-btn")
                    with gr.Column(scale=3):
                        ingest_status = gr.Markdown("", elem_id="ingest-status")
                        results = gr.Dataframe(
                            headers=["File", "Status", "Detail"],
                            value=[],
                            interactive=False,
                            label="Ingestion results",
                            elem_id="ingest-results",
                            wrap=True,
                        )
                gr.Markdown("### Documents")
                documents = gr.Dataframe(
                    headers=["File", "Type", "Chunks", "Last indexed", "Source"],
                    value=documents_rows,
                    interactive=False,
                    elem_id="documents",
                    wrap=True,
                    column_widths=["22%", "9%", "8%", "17%", "44%"],
                )
                with gr.Row():
                    refresh_btn = gr.Button("Refresh", size="sm", elem_id="refresh-docs")
                    reindex_btn = gr.Button("Re-index now", size="sm", elem_id="reindex-btn")
                with gr.Row():
                    to_delete = gr.Dropdown(
                        # Filled per session on page load (demo.load): choices set here would be
                        # published without a login in the page's API info (document paths).
                        choices=[],
                        value=None,
                        label="Document to delete (removed from Milvus, BM25 and the registry)",
                        elem_id="delete-select",
                        scale=4,
                    )
                    delete_btn = gr.Button("Delete", variant="stop", elem_id="delete-btn", scale=1)
                delete_status = gr.Markdown("", elem_id="delete-status")
            with gr.Tab("Status", id="status") as status_tab:
                status_info = gr.Markdown(status_markdown, elem_id="status-info")
                with gr.Accordion("Reranker tuning", open=False, elem_id="tuning"):
                    gr.Markdown(
                        "Train a reranker on this knowledge base's own documents: questions are written for a"
                        " sample of chunks, hard negatives mined, and the model is switched on only if it ranks"
                        " held-out questions better. Takes up to "
                        f"{settings.tuning.max_minutes:g} minutes; questions keep being answered meanwhile."
                    )
                    with gr.Row():
                        tune_generator = gr.Radio(
                            [("LLM-written questions", "llm"), ("Sentences of the chunks (fast, no LLM)", "sentence")],
                            value=settings.tuning.generator,
                            label="Training questions",
                            elem_id="tune-generator",
                        )
                        tune_btn = gr.Button("Tune reranker", elem_id="tune-btn")
                        rollback_btn = gr.Button("Roll back", size="sm", elem_id="tune-rollback")
                    tune_status = gr.Markdown(tuning_markdown, elem_id="tune-status")
                with gr.Row():
                    status_btn = gr.Button("Refresh", size="sm", elem_id="refresh-status")
                    sync_btn = gr.Button(
                        "Sync folder now", size="sm", elem_id="sync-now", visible=bool(service.scheduler.folder)
                    )

        chat_io = dict(inputs=[question, chatbot, history_state], outputs=[question, chatbot, history_state, sources_panel])
        send.click(ask, **chat_io, concurrency_id="chat")  # type: ignore[arg-type]
        question.submit(ask, **chat_io, concurrency_id="chat")  # type: ignore[arg-type]
        clear.click(clear_chat, outputs=[chatbot, history_state, sources_panel], queue=False)
        # The chatbot's own trash button must forget the conversation too (follow-ups use the history).
        chatbot.clear(lambda: ([], render_sources([])), outputs=[history_state, sources_panel], queue=False)
        # Ingestion handlers only poll the worker: their own concurrency group, so uploads and
        # re-indexing never take a chat slot.
        index_btn.click(
            index_files,
            inputs=[upload],
            outputs=[ingest_status, results, documents, to_delete, upload],
            concurrency_id="ingest",
            concurrency_limit=settings.ui.concurrency_limit,
        )
        reindex_btn.click(
            reindex,
            outputs=[ingest_status, results, documents, to_delete],
            concurrency_id="ingest",
            concurrency_limit=settings.ui.concurrency_limit,
        )
        delete_btn.click(delete_document, inputs=[to_delete], outputs=[delete_status, documents, to_delete])
        refresh_btn.click(refresh_documents, outputs=[documents, to_delete], queue=False)
        status_btn.click(status_markdown, outputs=[status_info], queue=False)
        sync_btn.click(sync_now, outputs=[status_info], concurrency_id="ingest")
        status_tab.select(status_markdown, outputs=[status_info], queue=False)
        status_tab.select(tuning_markdown, outputs=[tune_status], queue=False)
        tune_btn.click(tune, inputs=[tune_generator], outputs=[tune_status], concurrency_id="tune", concurrency_limit=1)
        rollback_btn.click(rollback_tuned, outputs=[tune_status], queue=False)
        demo.load(refresh_documents, outputs=[documents, to_delete], queue=False)

    # Several users can chat at once (the local LLM itself still generates one answer at a time).
    demo.queue(default_concurrency_limit=settings.ui.concurrency_limit)
    return demo


def mount_kwargs(service: RagService) -> dict[str, Any]:
    """Arguments for ``gr.mount_gradio_app``: login, upload limit, theme (settings that moved out of Blocks)."""
    ui = service.settings.ui
    kwargs: dict[str, Any] = {
        "max_file_size": f"{ui.max_upload_mb}mb",
        "theme": make_theme(),
        "css": CSS,
        "footer_links": ["api"],
        "show_error": True,
    }
    if ui.auth_enabled:
        kwargs["auth"] = (ui.auth_user, ui.auth_password.get_secret_value())
        kwargs["auth_message"] = "Sign in to the knowledge base."
    return kwargs
