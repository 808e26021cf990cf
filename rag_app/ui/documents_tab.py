"""The Documents tab: upload with per-file results, the documents table, re-index, delete, for the
knowledge base chosen at the top of the page (readers see the table; editors change it)."""
from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from ingest.loaders import SUPPORTED_EXTENSIONS
from ingest.state.schema import DEFAULT_KB
from rag_app.service import Forbidden, NotFound, Workspace

from .render import fmt_time, job_status, results_rows
from .session import principal_of, service_for

log = logging.getLogger(__name__)

_POLL_S = 0.3
Outputs = tuple[Any, ...]


def build_documents_tab(workspace: Workspace, demo: gr.Blocks, kb_select: gr.Dropdown) -> None:
    """The tab's components and events (inside a ``gr.Tab`` of ``demo``), on ``kb_select``'s knowledge base."""
    settings = workspace.settings
    data_dir = settings.data_dir.resolve()

    def shown_source(source: str) -> str:
        # Uploads live in the data dir: show "uploads/x.md", not the server's absolute layout.
        try:
            return str(Path(source).resolve().relative_to(data_dir))
        except (ValueError, OSError):
            return source

    def listed(kb: str | None, request: gr.Request) -> list[dict[str, Any]]:
        try:
            return workspace.documents(principal_of(workspace, request), kb or DEFAULT_KB)
        except (NotFound, Forbidden):
            return []

    def documents_rows(docs: list[dict[str, Any]]) -> list[list[Any]]:
        return [[d["file"], d["type"], d["chunks"], fmt_time(d["indexed_at"]), shown_source(d["source"])] for d in docs]

    def delete_choices(docs: list[dict[str, Any]]) -> Any:
        # Label with the date too: two uploads may share a file name.
        choices = [(f"{d['file']} ({fmt_time(d['indexed_at'])})", d["source"]) for d in docs]
        return gr.Dropdown(choices=choices, value=None)

    def index_files(files: list[str] | None, kb: str | None, request: gr.Request) -> Iterator[Outputs]:
        paths = [Path(f) for f in (files or [])]
        if not paths:
            yield "Choose one or more files first.", gr.update(), gr.update(), gr.update(), gr.update()
            return
        kb = service_for(workspace, request, kb, "editor").settings.knowledge_base  # refused before reading
        # Gradio keeps the client's file name as the temp file's base name; the service sanitises it
        # and stores the bytes under its own name (the client's name never becomes a path).
        job = workspace.upload(principal_of(workspace, request), kb, [(p.name, p) for p in paths])
        started = time.time()
        while not job.wait(_POLL_S):
            yield job_status(job, started), results_rows(job.snapshot()), gr.update(), gr.update(), gr.update()
        docs = listed(kb, request)
        yield job_status(job, started), results_rows(job.snapshot()), documents_rows(docs), delete_choices(docs), None

    def reindex(kb: str | None, request: gr.Request) -> Iterator[Outputs]:
        job = service_for(workspace, request, kb, "editor").reindex()
        started = time.time()
        while not job.wait(_POLL_S):
            yield job_status(job, started), results_rows(job.snapshot()), gr.update(), gr.update()
        docs = listed(kb, request)
        yield job_status(job, started), results_rows(job.snapshot()), documents_rows(docs), delete_choices(docs)

    def delete_document(source: str | None, kb: str | None, request: gr.Request) -> Outputs:
        if not source:
            return "Choose a document to delete.", gr.update(), gr.update()
        kb = service_for(workspace, request, kb, "editor").settings.knowledge_base
        try:
            removed = workspace.delete_document(principal_of(workspace, request), kb, source)
        except Exception as exc:
            log.exception("delete failed")
            return f"**Could not delete:** {exc}", gr.update(), gr.update()
        name = html.escape(Path(source).name)
        msg = f"Deleted **{name}** ({removed} chunks)." if removed is not None else f"{name} is not indexed."
        docs = listed(kb, request)
        return msg, documents_rows(docs), delete_choices(docs)

    def refresh_documents(kb: str | None, request: gr.Request) -> Outputs:
        docs = listed(kb, request)
        return documents_rows(docs), delete_choices(docs)

    ui = settings.ui
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            upload = gr.File(
                label=f"Upload documents ({', '.join(sorted(SUPPORTED_EXTENSIONS))};"
                f" up to {ui.max_upload_mb} MB each, {ui.max_files_per_request} per batch)",
                file_count="multiple",
                # No file_types filter: a refused type (like an oversize file) gets its reason in the
                # results table from the upload check, not a transient toast from the browser.
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
        value=[],
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
            # Filled per session on page load (demo.load): choices set here would be published
            # without a login in the page's API info (document paths).
            choices=[],
            value=None,
            label="Document to delete (removed from Milvus, BM25 and the registry)",
            elem_id="delete-select",
            scale=4,
        )
        delete_btn = gr.Button("Delete", variant="stop", elem_id="delete-btn", scale=1)
    delete_status = gr.Markdown("", elem_id="delete-status")

    # Ingestion handlers only poll the worker: their own concurrency group, so uploads and
    # re-indexing never take a chat slot.
    index_btn.click(
        index_files,
        inputs=[upload, kb_select],
        outputs=[ingest_status, results, documents, to_delete, upload],
        concurrency_id="ingest",
        concurrency_limit=ui.concurrency_limit,
    )
    reindex_btn.click(
        reindex,
        inputs=[kb_select],
        outputs=[ingest_status, results, documents, to_delete],
        concurrency_id="ingest",
        concurrency_limit=ui.concurrency_limit,
    )
    delete_btn.click(delete_document, inputs=[to_delete, kb_select], outputs=[delete_status, documents, to_delete])
    refresh_btn.click(refresh_documents, inputs=[kb_select], outputs=[documents, to_delete], queue=False)
    kb_select.change(refresh_documents, inputs=[kb_select], outputs=[documents, to_delete], queue=False)
