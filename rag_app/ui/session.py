"""Who is using the page, and which knowledge bases they may use: every UI handler goes through here,
so the UI enforces the same roles as the API (``Workspace`` checks them; this turns a refusal into a
message on the page)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ingest.state.schema import DEFAULT_KB
from rag_app.service import LOCAL, Forbidden, NotFound, Principal, RagService, Workspace
from rag_app.team.accounts import Role, role_at_least


def principal_of(workspace: Workspace, request: gr.Request | None) -> Principal:
    """The signed-in user (Gradio's login), or the local principal without accounts."""
    if not workspace.accounts_enabled:
        return LOCAL
    name = getattr(request, "username", None) if request is not None else None
    user = workspace.accounts.by_name(name) if name else None
    if user is None:
        raise gr.Error("Your session has ended: sign in again.")
    return Principal(user)


def kb_choices(workspace: Workspace, principal: Principal, needed: Role = "reader") -> list[tuple[str, str]]:
    """(label, id) of the knowledge bases the principal holds at least ``needed`` in."""
    return [(record.name, record.id) for record, role in workspace.knowledge_bases(principal)
            if role_at_least(role, needed)]


def kb_dropdown(workspace: Workspace, request: gr.Request | None, current: Any = None, *,
                multiselect: bool = False) -> Any:
    """A dropdown update listing the user's knowledge bases, keeping ``current`` when still theirs."""
    choices = kb_choices(workspace, principal_of(workspace, request))
    ids = [kb for _, kb in choices]
    if multiselect:
        kept = [kb for kb in (current or []) if kb in ids]
        return gr.update(choices=choices, value=kept or ids[:1])
    return gr.update(choices=choices, value=current if current in ids else (ids[0] if ids else None))


def service_for(workspace: Workspace, request: gr.Request | None, kb: str | None, needed: Role) -> RagService:
    """The knowledge base's service, when the user's role allows; else a message on the page. None
    chosen (the page still loading its choices): the default knowledge base."""
    try:
        return workspace.open_for(principal_of(workspace, request), kb or DEFAULT_KB, needed)
    except (NotFound, Forbidden) as exc:
        raise gr.Error(str(exc)) from None
