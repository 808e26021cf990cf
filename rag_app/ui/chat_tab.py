"""The Chat tab: a streamed answer on the left, the sources it quotes on the right."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from rag_app.answering import DeltaEvent, ErrorEvent, FinalEvent, NumberedSource, QueryEvent, SourcesEvent
from rag_app.service import RagService

from .render import render_sources

Outputs = tuple[Any, ...]


def _query_note(event: QueryEvent, max_question_tokens: int) -> str:
    note = f"Searched for: {event.query}" if event.rewritten else ""
    if event.truncated:  # say so: the answer covers only the start of a very long question
        cut = f"Only the first {max_question_tokens} tokens of the question were used."
        note = f"{note} · {cut}" if note else cut
    return note


def build_chat_tab(service: RagService) -> None:
    """The tab's components and events (inside a ``gr.Tab`` of the app's Blocks)."""
    max_question_tokens = service.settings.answer.max_question_tokens
    history_state = gr.State([])

    def ask(message: str, chat: list[dict[str, Any]], history: list[dict[str, str]]) -> Iterator[Outputs]:
        question = (message or "").strip()
        if not question:
            yield gr.update(), chat, history, gr.update()
            return
        chat = list(chat or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield "", chat, history, render_sources([], query_note="Searching…")
        answer = ""
        sources: list[NumberedSource] = []
        query_note = ""
        for event in service.ask_stream(question, history):
            if isinstance(event, QueryEvent):
                query_note = _query_note(event, max_question_tokens)
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
    send.click(ask, inputs=inputs, outputs=outputs, concurrency_id="chat")
    question.submit(ask, inputs=inputs, outputs=outputs, concurrency_id="chat")
    clear.click(clear_chat, outputs=[chatbot, history_state, sources_panel], queue=False)
    # The chatbot's own trash button must forget the conversation too (follow-ups use the history).
    chatbot.clear(lambda: ([], render_sources([])), outputs=[history_state, sources_panel], queue=False)
