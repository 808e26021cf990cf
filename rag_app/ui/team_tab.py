"""The Team tab: the chosen knowledge base's settings, members, feedback and audit log (its owners),
creating knowledge bases and users (admins), and the signed-in user's API tokens."""
from __future__ import annotations

import functools
import html
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from rag_app.service import Forbidden, NotFound, Workspace
from rag_app.team.accounts import AccountError, role_at_least
from rag_app.team.knowledge_bases import KnowledgeBaseError

from .render import fmt_time
from .session import kb_dropdown, principal_of

Outputs = tuple[Any, ...]
_REFUSALS = (NotFound, Forbidden, KnowledgeBaseError, AccountError)


def _export_path(kb: str, suffix: str, data: bytes) -> str:
    folder = Path(tempfile.mkdtemp(prefix="rag-export-"))
    path = folder / f"feedback-{kb}{suffix}"
    path.write_bytes(data)
    return str(path)


def build_team_tab(workspace: Workspace, demo: gr.Blocks, tab: gr.Tab, kb_select: gr.Dropdown) -> None:
    def guarded(fn: Any) -> Any:
        """A refusal (not allowed, a bad name) as a message on the page, never a traceback."""

        @functools.wraps(fn)  # Gradio reads the signature through __wrapped__ (gr.Request injection)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except _REFUSALS as exc:
                raise gr.Error(str(exc)) from None

        return run

    # --- the chosen knowledge base (owners) -------------------------------------------------------------
    def member_rows(kb: str | None, request: gr.Request) -> list[list[str]]:
        return [[user.name, role] for user, role in workspace.members(principal_of(workspace, request), kb or "")]

    def kb_view(kb: str | None, request: gr.Request) -> Outputs:
        principal = principal_of(workspace, request)
        role = workspace.role(principal, kb) if kb else None
        owner = role_at_least(role, "owner")
        record = workspace.catalog.get(kb) if kb else None
        if record is None or not owner:
            note = f"You are a **{role}** of this knowledge base." if role else ""
            return (note, gr.update(visible=False), "", "", [], [], [], "", "")
        members = member_rows(kb, request)
        feedback = [[fmt_time(f.created_at), "👍" if f.vote > 0 else "👎", f.question, f.answer[:200], f.comment]
                    for f in workspace.feedback(principal, record.id)]
        audit = [[fmt_time(e.at), e.actor, e.action, e.detail] for e in workspace.audit_entries(principal, record.id)]
        return (f"You are an **owner** of **{html.escape(record.name)}** (`{record.id}`).", gr.update(visible=True),
                record.name, record.description, members, feedback, audit, record.sync_folder, record.sync_cron)

    def save_settings(kb: str | None, name: str, description: str, request: gr.Request) -> Outputs:
        workspace.update_knowledge_base(principal_of(workspace, request), kb or "", name=name, description=description)
        return "Saved.", kb_dropdown(workspace, request, kb)

    def save_sync(kb: str | None, folder: str, cron: str, request: gr.Request) -> str:
        workspace.update_knowledge_base(principal_of(workspace, request), kb or "", sync_folder=folder, sync_cron=cron)
        return "Folder sync saved." + (" It runs on its schedule." if folder and cron else "")

    def set_member(kb: str | None, user: str, role: str, request: gr.Request) -> Outputs:
        workspace.set_member(principal_of(workspace, request), kb or "", user.strip(), role)
        return f"{html.escape(user)} is now a {role}.", member_rows(kb, request)

    def remove_member(kb: str | None, user: str, request: gr.Request) -> Outputs:
        removed = workspace.remove_member(principal_of(workspace, request), kb or "", user.strip())
        return (f"Removed {html.escape(user)}." if removed else f"{html.escape(user)} is not a member."), \
            member_rows(kb, request)

    def export_judged_questions(kb: str | None, request: gr.Request) -> str:
        data = workspace.feedback_judged_questions(principal_of(workspace, request), kb or "")
        return _export_path(kb or "", ".zip", data)

    def export_training_lines(kb: str | None, request: gr.Request) -> str:
        lines = workspace.feedback_training_lines(principal_of(workspace, request), kb or "")
        return _export_path(kb or "", ".jsonl", "".join(line + "\n" for line in lines).encode())

    def delete_kb(kb: str | None, typed: str, request: gr.Request) -> Outputs:
        record = workspace.catalog.get(kb or "")
        if record is None or typed.strip() != record.name:
            return "Type the knowledge base's name exactly to delete it.", gr.update()
        done = workspace.delete_knowledge_base(principal_of(workspace, request), record.id)
        return (f"Deleted **{html.escape(done['name'])}** ({done['chunks']} chunks) and everything in it.",
                kb_dropdown(workspace, request))

    # --- admins -----------------------------------------------------------------------------------------
    def user_rows(request: gr.Request) -> list[list[str]]:
        principal = principal_of(workspace, request)
        return [[u.name, "yes" if u.is_admin else "", fmt_time(u.created_at)] for u in workspace.users(principal)]

    def admin_view(request: gr.Request) -> Outputs:
        if not principal_of(workspace, request).is_admin:
            return gr.update(visible=False), []
        return gr.update(visible=True), user_rows(request) if workspace.accounts_enabled else []

    def create_kb(name: str, description: str, request: gr.Request) -> Outputs:
        record = workspace.create_knowledge_base(principal_of(workspace, request), name, description)
        return f"Created **{html.escape(record.name)}**.", kb_dropdown(workspace, request, record.id)

    def create_user(name: str, password: str, is_admin: bool, request: gr.Request) -> Outputs:
        had_accounts = workspace.accounts_enabled
        user = workspace.create_user(principal_of(workspace, request), name, password, is_admin=is_admin)
        if not had_accounts:  # the page was served without a login: it cannot ask for one until a restart
            return (f"Created user **{html.escape(user.name)}**. Accounts are now on: restart the app, then"
                    " everyone signs in.", [], "")
        return f"Created user **{html.escape(user.name)}**.", user_rows(request), ""

    def delete_user(name: str, request: gr.Request) -> Outputs:
        workspace.delete_user(principal_of(workspace, request), name.strip())
        return f"Deleted user {html.escape(name)}.", user_rows(request)

    # --- my account -------------------------------------------------------------------------------------
    def new_token(name: str, request: gr.Request) -> str:
        token, _ = workspace.create_token(principal_of(workspace, request), name)
        return (f"Your new API token (shown once; send it as `Authorization: Bearer …`):\n\n`{token}`")

    kb_note = gr.Markdown("", elem_id="team-kb-note")
    with gr.Column(visible=False) as owner_box:
        with gr.Accordion("Knowledge base settings", open=True):
            with gr.Row():
                kb_name = gr.Textbox(label="Name", elem_id="kb-name", max_lines=1)
                kb_description = gr.Textbox(label="Description", elem_id="kb-description", max_lines=3)
            save_btn = gr.Button("Save", size="sm", elem_id="kb-save")
            with gr.Row():
                sync_folder = gr.Textbox(label="Sync folder on the server (admins)", elem_id="kb-sync-folder")
                sync_cron = gr.Textbox(label="Schedule (cron, e.g. */30 * * * *)", elem_id="kb-sync-cron")
                sync_save = gr.Button("Save sync", size="sm", elem_id="kb-sync-save")
            settings_status = gr.Markdown("", elem_id="kb-settings-status")
        with gr.Accordion("Members", open=True):
            members = gr.Dataframe(headers=["User", "Role"], value=[], interactive=False, elem_id="kb-members")
            with gr.Row():
                member_name = gr.Textbox(label="User", elem_id="member-name", max_lines=1)
                member_role = gr.Dropdown(["reader", "editor", "owner"], value="reader", label="Role",
                                          elem_id="member-role")
                member_set = gr.Button("Add / change", size="sm", elem_id="member-set")
                member_remove = gr.Button("Remove", size="sm", variant="stop", elem_id="member-remove")
            member_status = gr.Markdown("", elem_id="member-status")
        with gr.Accordion("Feedback on answers", open=False):
            feedback = gr.Dataframe(headers=["When", "Vote", "Question", "Answer", "Comment"], value=[],
                                    interactive=False, wrap=True, elem_id="kb-feedback")
            with gr.Row():
                export_judged = gr.Button("Export judged questions (rag-eval)", size="sm", elem_id="export-judged")
                export_training = gr.Button("Export training lines (rag-tune)", size="sm", elem_id="export-training")
            export_file = gr.File(label="Export", interactive=False, elem_id="export-file")
        with gr.Accordion("Audit log", open=False):
            audit = gr.Dataframe(headers=["When", "Who", "What", "Detail"], value=[], interactive=False, wrap=True,
                                 elem_id="kb-audit")
        with gr.Accordion("Delete this knowledge base", open=False):
            confirm = gr.Textbox(label="Type its name to confirm", elem_id="kb-delete-confirm", max_lines=1)
            delete_btn = gr.Button("Delete knowledge base and everything in it", variant="stop",
                                   elem_id="kb-delete")
            delete_status = gr.Markdown("", elem_id="kb-delete-status")
    with gr.Column(visible=False) as admin_box:
        gr.Markdown("### Admin")
        with gr.Row():
            new_kb_name = gr.Textbox(label="New knowledge base", elem_id="new-kb-name", max_lines=1)
            new_kb_description = gr.Textbox(label="Description", elem_id="new-kb-description", max_lines=2)
            new_kb_btn = gr.Button("Create", size="sm", elem_id="new-kb-btn")
        users = gr.Dataframe(headers=["User", "Admin", "Created"], value=[], interactive=False, elem_id="users")
        with gr.Row():
            user_name = gr.Textbox(label="User name", elem_id="new-user-name", max_lines=1)
            user_password = gr.Textbox(label="Password", type="password", elem_id="new-user-password", max_lines=1)
            user_admin = gr.Checkbox(label="Admin", elem_id="new-user-admin")
            user_btn = gr.Button("Create user", size="sm", elem_id="new-user-btn")
            user_delete = gr.Button("Delete user", size="sm", variant="stop", elem_id="delete-user-btn")
        admin_status = gr.Markdown("", elem_id="admin-status")
    with gr.Accordion("My API tokens", open=False):
        with gr.Row():
            token_name = gr.Textbox(label="Token name", elem_id="token-name", max_lines=1)
            token_btn = gr.Button("Create token", size="sm", elem_id="token-btn")
        token_out = gr.Markdown("", elem_id="token-out")

    view_outputs = [kb_note, owner_box, kb_name, kb_description, members, feedback, audit, sync_folder, sync_cron]
    for event in (kb_select.change, tab.select):  # fresh on every visit: uploads and votes happen elsewhere
        event(guarded(kb_view), inputs=[kb_select], outputs=view_outputs, queue=False)
    demo.load(guarded(admin_view), outputs=[admin_box, users], queue=False)
    save_btn.click(guarded(save_settings), inputs=[kb_select, kb_name, kb_description],
                   outputs=[settings_status, kb_select], queue=False)
    sync_save.click(guarded(save_sync), inputs=[kb_select, sync_folder, sync_cron], outputs=[settings_status],
                    queue=False)
    member_set.click(guarded(set_member), inputs=[kb_select, member_name, member_role],
                     outputs=[member_status, members], queue=False)
    member_remove.click(guarded(remove_member), inputs=[kb_select, member_name], outputs=[member_status, members],
                        queue=False)
    export_judged.click(guarded(export_judged_questions), inputs=[kb_select], outputs=[export_file])
    export_training.click(guarded(export_training_lines), inputs=[kb_select], outputs=[export_file])
    delete_btn.click(guarded(delete_kb), inputs=[kb_select, confirm], outputs=[delete_status, kb_select])
    new_kb_btn.click(guarded(create_kb), inputs=[new_kb_name, new_kb_description], outputs=[admin_status, kb_select],
                     queue=False)
    user_btn.click(guarded(create_user), inputs=[user_name, user_password, user_admin],
                   outputs=[admin_status, users, user_password], queue=False)
    user_delete.click(guarded(delete_user), inputs=[user_name], outputs=[admin_status, users], queue=False)
    token_btn.click(guarded(new_token), inputs=[token_name], outputs=[token_out], queue=False)
