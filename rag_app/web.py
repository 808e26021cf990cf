"""What ``rag-app`` serves: the JSON API under ``/api`` and the Gradio UI at ``/``, one workspace."""
from __future__ import annotations

from fastapi import FastAPI

from rag_app.api import create_api
from rag_app.config import Settings
from rag_app.llm import LLMBackend
from rag_app.service import KnowledgeBase, RagService, Workspace


def create_app(
    settings: Settings,
    kb: KnowledgeBase | None = None,
    *,
    llm: LLMBackend | None = None,
    service: RagService | None = None,
    workspace: Workspace | None = None,
    mount_ui: bool = True,
) -> FastAPI:
    """The whole app. ``kb`` (or ``service``) is the default knowledge base, by default a new one
    over ``settings``; the LLM is built on the first question that needs it unless ``llm`` is given."""
    workspace = workspace or Workspace.open(settings, llm=llm, default_kb=kb, default_service=service)
    app = create_api(workspace)
    if not mount_ui:
        return app
    import gradio as gr

    from rag_app.ui.app import build_ui, mount_kwargs  # first: it turns analytics off before gradio loads

    mounted: FastAPI = gr.mount_gradio_app(app, build_ui(workspace), path="/", **mount_kwargs(workspace))
    return mounted
