"""The Status tab: models, stores and their counts, the calibrated cutoff, the folder sync, and reranker tuning."""
from __future__ import annotations

import html
import time
from collections.abc import Iterator

import gradio as gr

from rag_app.service import RagService, Workspace

from .render import sync_rows
from .session import principal_of, service_for

_TUNING_STAGES = {
    "starting": "Starting",
    "sample": "Sampling chunks",
    "questions": "Writing questions",
    "negatives": "Mining hard negatives",
    "train": "Training",
    "check": "Checking on held-out questions",
    "save": "Saving",
}


def status_markdown(service: RagService) -> str:
    st = service.status()
    c = st["counts"]
    llm, emb = st["llm"], st["embedder"]
    precision = f" in {emb['precision']}" if emb.get("precision") else ""
    llm_line = f"`{llm['backend']}` · model `{llm['model']}`"
    if llm.get("base_url"):
        llm_line += f" · endpoint `{llm['base_url']}`"
    llm_line += " · loaded" if llm["loaded"] else " · not loaded yet (loads on the first question)"
    agree = c["registry_chunks"] == c["milvus_chunks"] == c["bm25_chunks"]
    return "\n".join(
        [
            "| | |",
            "|---|---|",
            f"| Embedding model | `{emb['model']}` ({emb['dim']}-d, {emb['runtime']}{precision}) |",
            f"| LLM | {llm_line} |",
            f"| Milvus | {st['milvus']['mode']} · `{st['milvus']['uri']}`"
            f" · collection `{st['milvus']['collection']}` |",
            f"| Keyword search | {st['keyword_search']} |",
            f"| State database | `{st['state_database']}` (registry, leases, calibration) |",
            f"| Relevance threshold | `{st['retrieval']['threshold']}` · top {st['retrieval']['top_k']} |",
            *calibration_rows(st["calibration"]),
            f"| Fusion | `{st['retrieval']['fusion']}` |",
            f"| Documents (registry) | {c['documents']} |",
            f"| Chunks: registry / Milvus / BM25 | {c['registry_chunks']} / {c['milvus_chunks']} / {c['bm25_chunks']}"
            f" {'(consistent)' if agree else '**differ**: run `rag-ingest --check`'} |",
            f"| Ingestion jobs waiting | {st['ingestion_queue']} |",
            f"| Recent jobs (every replica) | {_jobs_line(st.get('recent_jobs', []))} |",
            *sync_rows(st["sync"]),
        ]
    )


def calibration_rows(cal: dict) -> list[str]:
    """The knowledge base's own cutoff: what it is, when and on what it was computed, what it does."""
    if cal.get("state") != "calibrated":
        rows = [f"| Calibration | {html.escape(str(cal.get('state', '')))} |"]
    else:
        rows = [
            f"| Calibration | {cal['computed_at']} on {cal['chunks']} chunks: {cal['probes']} probe questions"
            f" ({html.escape(cal['probe_kind'])}) and {cal['offtopic_questions']} off-topic questions"
            f" ({cal['seconds']:.0f} s) |",
            f"| Expected on this knowledge base | answers {cal['expected_answered']:.0%} of in-domain questions,"
            f" refuses {cal['expected_offtopic_refused']:.0%} of off-topic ones and"
            f" {cal['expected_holes_refused']:.0%} of questions whose document is missing (AUC {cal['auc']:.3f}) |",
        ]
        if cal.get("changed_since"):
            rows.append(f"| Changed since calibration | {cal['changed_since']} |")
        if cal.get("stale"):
            rows.append(f"| Out of date | {html.escape(cal['stale'])} |")
    if cal.get("running"):
        rows.append(f"| Calibrating now | {html.escape(cal['running'])} (questions use the previous cutoff) |")
    if cal.get("last_run"):
        rows.append(f"| Last calibration | {html.escape(cal['last_run'])} |")
    return rows


def tuning_markdown(service: RagService) -> str:
    job = service.tuning
    active = service.tuned_models.active()
    on = f"Tuned reranker on: `{active.version}` (blend {active.blend:g})." if active else "No tuned reranker on."
    if job is None:
        return on
    if job.running:
        minutes = (time.time() - job.created) / 60
        step = f" {job.done}/{job.total}" if job.total else ""
        detail = f" ({html.escape(job.detail)})" if job.detail else ""
        return f"**{_TUNING_STAGES.get(job.stage, job.stage)}**{step}{detail} · {minutes:.0f} min\n\n{on}"
    if job.state == "failed":
        return f"**Tuning failed:** {html.escape(job.error)}\n\n{on}"
    return "\n".join(f"- {html.escape(line)}" for line in job.report) + f"\n\n{on}"


def build_status_tab(workspace: Workspace, tab: gr.Tab, kb_select: gr.Dropdown) -> None:
    """The tab's components and events (inside ``tab``), on ``kb_select``'s knowledge base."""
    settings = workspace.settings

    def show_status(kb: str | None, request: gr.Request) -> str:
        return status_markdown(service_for(workspace, request, kb, "reader"))

    def show_both(kb: str | None, request: gr.Request) -> tuple[str, str, object]:
        service = service_for(workspace, request, kb, "reader")
        sync_visible = gr.update(visible=bool(service.sync_folder_configured))
        return status_markdown(service), tuning_markdown(service), sync_visible

    def sync_now(kb: str | None, request: gr.Request) -> str:
        kb = service_for(workspace, request, kb, "editor").settings.knowledge_base
        workspace.sync(principal_of(workspace, request), kb, wait=False)
        return show_status(kb, request)

    def tune(generator: str, kb: str | None, request: gr.Request) -> Iterator[str]:
        service = service_for(workspace, request, kb, "owner")
        try:
            job = service.tune(generator)
        except RuntimeError as exc:
            yield f"**{html.escape(str(exc))}**"
            return
        while not job.wait(1.0):
            yield tuning_markdown(service)
        yield tuning_markdown(service)

    def rollback_tuned(kb: str | None, request: gr.Request) -> str:
        service = service_for(workspace, request, kb, "owner")
        try:
            version = service.rollback_tuning()
        except Exception as exc:
            return f"**Could not roll back:** {html.escape(str(exc))}"
        return f"Rolled back: now `{version}`.\n\n" + tuning_markdown(service)

    status_info = gr.Markdown("", elem_id="status-info")
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
        tune_status = gr.Markdown("", elem_id="tune-status")
    with gr.Row():
        status_btn = gr.Button("Refresh", size="sm", elem_id="refresh-status")
        sync_btn = gr.Button("Sync folder now", size="sm", elem_id="sync-now", visible=False)

    status_btn.click(show_status, inputs=[kb_select], outputs=[status_info], queue=False)
    sync_btn.click(sync_now, inputs=[kb_select], outputs=[status_info], concurrency_id="ingest")
    for event in (tab.select, kb_select.change):
        event(show_both, inputs=[kb_select], outputs=[status_info, tune_status, sync_btn], queue=False)
    tune_btn.click(tune, inputs=[tune_generator, kb_select], outputs=[tune_status], concurrency_id="tune",
                   concurrency_limit=1)
    rollback_btn.click(rollback_tuned, inputs=[kb_select], outputs=[tune_status], queue=False)


def _jobs_line(jobs: list[dict]) -> str:
    """Counts by state, then the newest few: "2 done, 1 interrupted · upload done, sync interrupted"."""
    if not jobs:
        return "none yet"
    counts: dict[str, int] = {}
    for job in jobs:
        counts[str(job.get("state"))] = counts.get(str(job.get("state")), 0) + 1
    newest = ", ".join(f"{html.escape(str(j.get('kind')))} {html.escape(str(j.get('state')))}" for j in jobs[:3])
    return ", ".join(f"{n} {state}" for state, n in counts.items()) + f" · newest: {newest}"
