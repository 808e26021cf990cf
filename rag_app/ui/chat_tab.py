"""The Chat tab: a streamed answer on the left, the sources it quotes on the right."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from rag_app.answering import DeltaEvent, ErrorEvent, FinalEvent, NumberedSource, QueryEvent, SourcesEvent
from rag_app.service import RagService

from .render import render_sources

Outputs = tuple[Any, ...]


_HOW = {
    "combined": "your question joined to the previous one",
    "rewritten": "rewritten from the conversation by the model",
}


def _query_note(event: QueryEvent, max_question_tokens: int) -> str:
    note = ""
    if event.rewritten:
        how = _HOW.get(event.method, "")
        note = f"Searched for: {event.query}" + (f" ({how})" if how else "")
    if event.truncated:  # say so: the answer covers only the start of a very long question
        cut = f"Only the first {max_question_tokens} tokens of the question were used."
        note = f"{note} · {cut}" if note else cut
    return note


# What the assistant's bubble says until the answer's first words arrive (never an empty bubble).
_SEARCHING = "_Searching the documents…_"
_READING = "_Reading {n} passage(s)…_"


def build_chat_tab(service: RagService) -> None:
    """The tab's components and events (inside a ``gr.Tab`` of the app's Blocks)."""
    max_question_tokens = service.settings.answer.max_question_tokens
    history_state = gr.State([])

    def ask(message: str, chat: list[dict[str, Any]], history: list[dict[str, str]]) -> Iterator[Outputs]:
        question = (message or "").strip()
        if not question:
            yield gr.update(), chat, history, gr.update()
            return
        chat = list(chat or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": _SEARCHING}]
        yield "", chat, history, render_sources([], query_note="Searching…")
        answer = ""
        sources: list[NumberedSource] = []
        query_note = ""
        for event in service.ask_stream(question, history):
            if isinstance(event, QueryEvent):
                query_note = _query_note(event, max_question_tokens)
            elif isinstance(event, SourcesEvent):
                sources = event.sources
                if sources and not event.related_only:
                    chat[-1] = {"role": "assistant", "content": _READING.format(n=len(sources))}
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
                    no_evidence=event.note if event.refusal == "no_evidence" else "",
                    not_answered=event.note if event.refusal in ("not_in_sources", "unsupported") else "",
                )
                yield "", chat, history, panel
            elif isinstance(event, ErrorEvent):
                chat[-1] = {"role": "assistant", "content": f"**Error:** {event.message}"}
                yield "", chat, history, render_sources(sources, query_note=query_note, error=event.message)

    def clear_chat() -> Outputs:
        return [], [], render_sources([])

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

    inputs = [question, chatbot, history_state]
    outputs = [question, chatbot, history_state, sources_panel]

    # One question at a time per page: Ask and Enter are off while an answer streams, and back on
    # when it ends (whatever way it ends), so a second question can never overwrite the first.
    def lock() -> Outputs:
        return gr.update(interactive=False), gr.update(interactive=False, value="Answering…")

    def unlock() -> Outputs:
        return gr.update(interactive=True), gr.update(interactive=True, value="Ask")

    for trigger in (send.click, question.submit):
        (trigger(lock, outputs=[question, send], queue=False, trigger_mode="once", api_visibility="private")
         .then(ask, inputs=inputs, outputs=outputs, concurrency_id="chat", api_name="ask")
         .then(unlock, outputs=[question, send], queue=False, api_visibility="private"))
    clear.click(clear_chat, outputs=[chatbot, history_state, sources_panel], queue=False)
    # The chatbot's own trash button must forget the conversation too (follow-ups use the history).
    chatbot.clear(lambda: ([], render_sources([])), outputs=[history_state, sources_panel], queue=False)
