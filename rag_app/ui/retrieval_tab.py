"""The Retrieval test tab: an editor types a query and sees the ranked chunks with every stage's
scores, which passed the relevance threshold and why, without the LLM (``/api/search``, for people)."""
from __future__ import annotations

import html
from typing import Any

import gradio as gr

from rag_app.retrieval.results import RetrievedChunk, chunk_scores
from rag_app.service import EmptyQuestionError, Workspace, display_name

from .render import plain_match
from .session import service_for

HEADERS = ["Rank", "Passed", "File", "Where", "Relevance", "Fused", "Dense", "Dense margin", "BM25",
           "BM25 coverage", "Rerank", "In words", "Text"]
_SNIPPET = 240


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _row(rank: int, chunk: RetrievedChunk, passed: bool) -> list[Any]:
    scores = chunk_scores(chunk)
    text = " ".join(chunk.text.split())
    return [rank, "yes" if passed else "no", display_name(chunk.source), chunk.location,
            *(_score(scores.get(k)) for k in ("relevance", "fused", "dense", "dense_margin", "bm25", "bm25_coverage",
                                                "rerank")),
            plain_match(chunk), text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")]


def build_retrieval_tab(workspace: Workspace, kb_select: gr.Dropdown) -> None:
    def run(query: str, top_k: int, kb: str | None, request: gr.Request) -> tuple[str, list[list[Any]]]:
        service = service_for(workspace, request, kb, "editor")
        try:
            found = service.search(query, int(top_k))
        except EmptyQuestionError as exc:
            return f"**{html.escape(str(exc))}**", []
        result = found.result
        threshold = service.kb.ready_retriever().threshold.describe()
        rows = [_row(i, c, True) for i, c in enumerate(result.chunks, start=1)]
        rows += [_row(len(rows) + i, c, False) for i, c in enumerate(result.below_threshold, start=1)]
        # Inside a code span Markdown shows characters as they are: no HTML escaping there.
        code = "`" + threshold.replace("`", "'") + "`"
        verdict = (f"**{len(result.chunks)} chunk(s) passed** the threshold {code}"
                   if result.has_evidence else
                   f"**Nothing passed** the threshold {code}: a question like this is refused"
                   " without calling the LLM." + (f" ({html.escape(result.note)})" if result.note else ""))
        timings = " · ".join(f"{name} {ms:.0f} ms" for name, ms in result.timings_ms.items())
        lines = [verdict, f"{result.candidates} candidates from the dense and keyword legs, fused and ranked."
                 " Rows below the passed ones are the best rejected, for comparison."]
        if found.truncated:
            lines.append("Only the start of this long query was searched.")
        if timings:
            lines.append(f"Timings: {timings}")
        return "\n\n".join(lines), rows

    gr.Markdown("Type a query to see what retrieval finds in the chosen knowledge base, stage by stage,"
                " and which chunks pass the relevance threshold. The LLM is not called.")
    with gr.Row():
        query = gr.Textbox(label="Query", scale=6, elem_id="retrieval-query", max_lines=3)
        top_k = gr.Slider(1, 20, value=5, step=1, label="Top k", scale=2, elem_id="retrieval-top-k")
        go = gr.Button("Search", variant="primary", scale=1, elem_id="retrieval-btn")
    summary = gr.Markdown("", elem_id="retrieval-summary")
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True, elem_id="retrieval-results")
    for trigger in (go.click, query.submit):
        trigger(run, inputs=[query, top_k, kb_select], outputs=[summary, table], concurrency_id="chat")
