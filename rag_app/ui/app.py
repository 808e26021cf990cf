"""The Gradio UI: Chat, Documents, Retrieval test, Status and Team tabs (one module each) over one
:class:`~rag_app.service.workspace.Workspace`; the knowledge base is chosen at the top of the page.

Works offline: analytics are off unless enabled in the settings, and the theme uses fonts bundled
with Gradio plus system CJK fonts (no Google Fonts / CDN fetches).
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from rag_app.service import Workspace

from .chat_tab import build_chat_tab
from .documents_tab import build_documents_tab
from .retrieval_tab import build_retrieval_tab
from .session import kb_dropdown, principal_of
from .status_tab import build_status_tab
from .team_tab import build_team_tab

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
#sources .inferred-note { font-size: 0.85em; opacity: 0.85; margin-bottom: 6px; }
#sources .src-details { font-size: 0.8em; opacity: 0.75; }
#sources .badge.related { background: var(--background-fill-primary); color: inherit; }
#sources .query-used { font-size: 0.85em; opacity: 0.8; margin-bottom: 6px; }
#preview-context .ctx-chunk { font-size: 0.9em; opacity: 0.7; white-space: pre-wrap; }
#preview-context .ctx-chunk.cited { opacity: 1; background: #fef9c3; border-left: 3px solid #eab308;
  padding-left: 6px; }
#sources .llm-error { border: 1px solid #dc2626; background: #fee2e2; color: #7f1d1d; border-radius: 8px;
  padding: 10px 12px; }
"""

_FONTS: list[gr.themes.Font | str] = [
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


def build_ui(workspace: Workspace) -> gr.Blocks:
    """The tabs over one workspace; every handler acts as the signed-in user (``session``)."""
    settings = workspace.settings

    def signed_in(request: gr.Request) -> tuple[str, object]:
        principal = principal_of(workspace, request)
        who = f"Signed in as **{principal.name}**{' (admin)' if principal.is_admin and principal.user else ''}" \
            " · [Sign out](/logout)" if workspace.accounts_enabled else ""
        return who, kb_dropdown(workspace, request)

    with gr.Blocks(title="Knowledge base Q&A", analytics_enabled=settings.ui.analytics) as demo:
        with gr.Row():
            gr.Markdown("## Knowledge base Q&A\nAnswers come only from your documents, with numbered citations.")
            with gr.Column(scale=0, min_width=260):
                who = gr.Markdown("", elem_id="signed-in")
                # Filled per user on page load; the service checks every id it is given.
                kb_select = gr.Dropdown(choices=[], label="Knowledge base", elem_id="kb-select",
                                        allow_custom_value=True)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                build_chat_tab(workspace, demo)
            with gr.Tab("Documents", id="kb"):
                build_documents_tab(workspace, demo, kb_select)
            with gr.Tab("Retrieval test", id="retrieval"):
                build_retrieval_tab(workspace, kb_select)
            with gr.Tab("Status", id="status") as status_tab:
                build_status_tab(workspace, status_tab, kb_select)
            with gr.Tab("Team", id="team") as team_tab:
                build_team_tab(workspace, demo, team_tab, kb_select)
        demo.load(signed_in, outputs=[who, kb_select], queue=False)
    # Several users can chat at once (the local LLM itself still generates one answer at a time).
    demo.queue(default_concurrency_limit=settings.ui.concurrency_limit)
    return demo


def mount_kwargs(workspace: Workspace) -> dict[str, Any]:
    """Arguments for ``gr.mount_gradio_app``: login, upload limit, theme (settings that moved out of Blocks)."""
    ui = workspace.settings.ui
    kwargs: dict[str, Any] = {
        # The per-file limit is checked by the upload itself, which reports it in the results table;
        # Gradio's own cap (a toast only) stays as the backstop at the per-upload total.
        "max_file_size": f"{ui.max_request_mb}mb",
        "theme": make_theme(),
        "css": CSS,
        "footer_links": ["api"],
        "show_error": True,
    }
    if workspace.accounts_enabled:
        # Every account signs in with its own name and password (checked against the argon2 hash).
        kwargs["auth"] = lambda name, password: workspace.login(name, password) is not None
        kwargs["auth_message"] = "Sign in to the knowledge base."
    return kwargs
