"""The Chat tab: kept conversations, a streamed answer with thumbs up/down, the sources it quotes,
and a cited source opened at its place (the PDF page with the passage highlighted)."""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image

from rag_app.answering import DeltaEvent, ErrorEvent, FinalEvent, NumberedSource, QueryEvent, SourcesEvent
from rag_app.service import Forbidden, NotFound, SavedEvent, Workspace
from rag_app.team.feedback import Vote

from .render import render_context, render_saved_sources, render_sources
from .session import kb_dropdown, principal_of

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


# Refusals after the passages were read: the Sources panel shows them as related reading, with why.
WITHHELD = ("not_in_sources", "unsupported", "off_question", "unsure")

# What the assistant's bubble says until the answer's first words arrive (never an empty bubble).
_SEARCHING = "_Searching the documents…_"
_READING = "_Reading {n} passage(s)…_"


def _preview_choices(sources: list[dict[str, Any]]) -> Any:
    """The "open a source" list: each quoted source, opening at its place in its document."""
    choices = [(f"[{s.get('number')}] {s.get('file', '')}" + (f" — {s['location']}" if s.get("location") else ""),
                f"{s.get('kb', '')}|{s.get('chunk_id', '')}") for s in sources if s.get("chunk_id")]
    return gr.update(choices=choices, value=None, visible=bool(choices))


def _conversation_choices(workspace: Workspace, request: gr.Request, current: str | None = None) -> Any:
    principal = principal_of(workspace, request)
    choices = [(c.title or "(untitled)", c.id) for c in workspace.conversation_list(principal)]
    return gr.update(choices=choices, value=current if current in [c for _, c in choices] else None)


def build_chat_tab(workspace: Workspace, demo: gr.Blocks) -> None:
    """The tab's components and events (inside a ``gr.Tab`` of ``demo``): kept conversations on the
    left, the chat in the middle, the quoted sources (and a cited one opened in place) on the right."""
    max_question_tokens = workspace.settings.answer.max_question_tokens
    conversation_state = gr.State("")  # the kept conversation's id ("" until the first answer)
    message_ids = gr.State([])  # per chat bubble: the stored answer's id (None for questions)

    def ask(message: str, chat: list[dict[str, Any]], conversation: str, ids: list[str | None],
            kbs: list[str] | None, request: gr.Request) -> Iterator[Outputs]:
        question = (message or "").strip()
        if not question:
            yield gr.update(), chat, conversation, ids, gr.update(), gr.update(), gr.update()
            return
        principal = principal_of(workspace, request)
        try:
            # Nothing chosen (e.g. asked before the page finished loading): the default knowledge base.
            events = workspace.ask_stream(principal, question, kbs=kbs or None,
                                          conversation_id=conversation or None, keep=True)
        except (NotFound, Forbidden) as exc:
            hint = "" if kbs or conversation else " Choose a knowledge base to search (\"Search in\")."
            raise gr.Error(str(exc) + hint) from None
        chat = list(chat or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": _SEARCHING}]
        ids = list(ids or []) + [None, None]
        yield "", chat, conversation, ids, render_sources([], query_note="Searching…"), gr.update(), gr.update()
        answer = ""
        sources: list[NumberedSource] = []
        source_dicts: list[dict[str, Any]] = []
        query_note = ""
        panel: Any = gr.update()
        for event in events:
            if isinstance(event, QueryEvent):
                query_note = _query_note(event, max_question_tokens)
            elif isinstance(event, SourcesEvent):
                sources = event.sources
                if sources and not event.related_only:
                    chat[-1] = {"role": "assistant", "content": _READING.format(n=len(sources))}
                    yield "", chat, conversation, ids, render_sources(sources, query_note=query_note), \
                        gr.update(), gr.update()
            elif isinstance(event, DeltaEvent):
                answer += event.text
                chat[-1] = {"role": "assistant", "content": answer}
                yield "", chat, conversation, ids, gr.update(), gr.update(), gr.update()
            elif isinstance(event, FinalEvent):
                chat[-1] = {"role": "assistant", "content": event.answer or answer}
                panel = render_sources(
                    event.sources,
                    {c.number: c.inferred for c in event.citations},
                    query_note=query_note,
                    no_evidence=event.note if event.refusal == "no_evidence" else "",
                    not_answered=event.note if event.refusal in WITHHELD else "",
                )
                only = kbs[0] if kbs and len(kbs) == 1 else ""
                source_dicts = [{"kb": only, **s.to_dict()} for s in event.sources]
                yield "", chat, conversation, ids, panel, _preview_choices(source_dicts), gr.update()
            elif isinstance(event, ErrorEvent):
                chat[-1] = {"role": "assistant", "content": f"**Error:** {event.message}"}
                panel = render_sources(sources, query_note=query_note, error=event.message)
                yield "", chat, conversation, ids, panel, gr.update(), gr.update()
            elif isinstance(event, SavedEvent):
                conversation = event.conversation_id
                ids[-1] = event.message_id
                yield ("", chat, conversation, ids, gr.update(), gr.update(),
                       _conversation_choices(workspace, request, conversation))

    def new_conversation() -> Outputs:
        return [], "", [], render_sources([]), gr.update(choices=[], visible=False), gr.update(value=None), ""

    def open_conversation(conversation_id: str | None, request: gr.Request) -> Outputs:
        if not conversation_id:
            return (gr.update(),) * 7
        try:
            conversation, messages = workspace.conversation(principal_of(workspace, request), conversation_id)
        except NotFound as exc:
            raise gr.Error(str(exc)) from None
        chat: list[dict[str, Any]] = []
        ids: list[str | None] = []
        for m in messages:
            chat += [{"role": "user", "content": m.question}, {"role": "assistant", "content": m.answer}]
            ids += [None, m.id]
        last = messages[-1] if messages else None
        panel = render_saved_sources(last.sources, last.citations, last.outcome) if last else render_sources([])
        previews = _preview_choices(last.sources if last else [])
        return chat, conversation.id, ids, panel, previews, gr.update(value=conversation.kbs), conversation.title

    def rename(conversation_id: str, title: str, request: gr.Request) -> Any:
        if not conversation_id or not (title or "").strip():
            raise gr.Error("Open a conversation and type its new name.")
        workspace.rename_conversation(principal_of(workspace, request), conversation_id, title)
        return _conversation_choices(workspace, request, conversation_id)

    def delete(conversation_id: str, request: gr.Request) -> Outputs:
        if conversation_id:
            workspace.delete_conversation(principal_of(workspace, request), conversation_id)
        cleared = new_conversation()
        return (*cleared[:5], _conversation_choices(workspace, request), cleared[6])

    def feedback(ids: list[str | None], comment: str, data: gr.LikeData, request: gr.Request) -> Outputs:
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        message_id = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
        if message_id is None or data.liked not in (True, False):
            return gr.update(), gr.update()
        vote: Vote = 1 if data.liked else -1
        workspace.give_feedback(principal_of(workspace, request), message_id, vote, comment or "")
        thanks = "Thanks: marked helpful." if vote > 0 else "Thanks: marked not helpful."
        return thanks + (" Your comment was saved with it." if comment else ""), ""

    def open_source(choice: str | None, request: gr.Request) -> Outputs:
        if not choice:
            return gr.update(visible=False), ""
        kb, _, chunk_id = choice.partition("|")
        try:
            found = workspace.preview(principal_of(workspace, request), kb, chunk_id)
        except (NotFound, Forbidden) as exc:
            raise gr.Error(str(exc)) from None
        image = Image.open(io.BytesIO(found.page_png)) if found.page_png else None
        where = found.chunk.get("location") or ""
        title = f"**{found.chunk.get('file', '')}**" + (f" — {where}" if where else "")
        return gr.update(value=image, visible=image is not None), title + "\n\n" + render_context(
            found.context, found.page_note)

    def initial(request: gr.Request) -> Outputs:
        return kb_dropdown(workspace, request, multiselect=True), _conversation_choices(workspace, request)

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=180):
            gr.Markdown("### Conversations")
            clear = gr.Button("New conversation", size="sm", elem_id="clear-btn")
            conversations = gr.Radio(choices=[], label="Kept conversations", elem_id="conversations")
            title = gr.Textbox(label="Name", elem_id="conv-title", max_lines=1)
            with gr.Row():
                rename_btn = gr.Button("Rename", size="sm", elem_id="rename-conv")
                delete_btn = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conv")
        with gr.Column(scale=3):
            # Choices are filled per user on page load; the service checks every id it is given.
            chat_kbs = gr.Dropdown(choices=[], multiselect=True, label="Search in", elem_id="chat-kbs",
                                   allow_custom_value=True)
            chatbot = gr.Chatbot(label="Chat", height=480, elem_id="chatbot", buttons=["copy"],
                                 feedback_options=("Like", "Dislike"))
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
            comment = gr.Textbox(placeholder="Optional comment, saved with your thumbs up or down",
                                 show_label=False, elem_id="feedback-comment", max_lines=2)
            feedback_status = gr.Markdown("", elem_id="feedback-status")
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources_panel = gr.HTML(render_sources([]), elem_id="sources")
            preview_select = gr.Radio(choices=[], label="Open a source at the cited place", visible=False,
                                      elem_id="open-source")
            preview_image = gr.Image(label="Cited page", visible=False, interactive=False, elem_id="preview-page")
            preview_text = gr.Markdown("", elem_id="preview-context")

    inputs = [question, chatbot, conversation_state, message_ids, chat_kbs]
    outputs = [question, chatbot, conversation_state, message_ids, sources_panel, preview_select, conversations]

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
    opened = [chatbot, conversation_state, message_ids, sources_panel, preview_select, chat_kbs, title]
    clear.click(new_conversation, outputs=[*opened[:5], conversations, title], queue=False)
    conversations.input(open_conversation, inputs=[conversations], outputs=opened, queue=False)
    rename_btn.click(rename, inputs=[conversation_state, title], outputs=[conversations], queue=False)
    delete_btn.click(delete, inputs=[conversation_state], outputs=[*opened[:5], conversations, title], queue=False)
    chatbot.like(feedback, inputs=[message_ids, comment], outputs=[feedback_status, comment], queue=False)
    preview_select.input(open_source, inputs=[preview_select], outputs=[preview_image, preview_text], queue=False)
    # The chatbot's own trash button starts a new conversation too (the kept one stays in the list).
    chatbot.clear(lambda: ("", [], render_sources([])), outputs=[conversation_state, message_ids, sources_panel],
                  queue=False)
    demo.load(initial, outputs=[chat_kbs, conversations], queue=False)
