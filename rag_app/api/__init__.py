"""The JSON API under ``/api`` (``rag_app.web`` mounts the Gradio UI beside it at ``/``).

Per knowledge base, under ``/api/kbs/{kb}`` (and directly under ``/api`` with ``?kb=``, default
``default``):

    POST   ask                      {"question", "history", "stream", "kbs": [...], "keep"}  -> answer (SSE)
    GET    search?query=…&top_k=5   POST search {"query", "top_k"}  -> ranked chunks with their scores
    POST   sync                     the knowledge base's folder sync now (?wait=true)
    POST   documents                multipart "files"  -> per-file results
    GET    documents                indexed documents;  GET documents/file?source=…  the stored file
    DELETE documents?source=…       remove a document from every store
    GET    status, jobs

    GET/PATCH/DELETE /api/kbs/{kb}  the knowledge base; members, feedback (+ /export), audit,
                                    chunks/{id}/preview and chunks/{id}/page.png
    GET/POST /api/kbs               the ones the user may see; create (admins)
    /api/conversations[/{id}[/ask]], /api/messages/{id}/feedback, /api/me[/tokens|/password],
    /api/users (admins), /api/audit (admins), GET /api/health (no login)

Credentials, when accounts exist: HTTP basic (a user's name and password) or ``Authorization:
Bearer <API token>``. A knowledge base the user has no role in is 404, an action above their role
403 (``rag_app.service.access``).

Questions and search queries are cleaned (control characters out) and cut to
``answer.max_question_tokens`` tokens; an empty one is a 422 with a message, never a 5xx.
"""
from __future__ import annotations

from .app import create_api
from .schemas import MAX_JSON_BODY_BYTES, MAX_QUESTION_CHARS

__all__ = ["MAX_JSON_BODY_BYTES", "MAX_QUESTION_CHARS", "create_api"]
