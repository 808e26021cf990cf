"""The JSON API under ``/api`` (``rag_app.web`` mounts the Gradio UI beside it at ``/``).

    POST   /api/ask                 {"question": "...", "history": [{"role": "user", "content": "..."}, ...],
                                     "stream": false}  -> answer, citations, sources (stream: SSE events)
    GET    /api/search?query=…&top_k=5
    POST   /api/search              {"query": "...", "top_k": 5}  -> the retrieved chunks with their scores
    POST   /api/sync                run the configured folder sync now (?wait=true)
    POST   /api/documents           multipart "files" (one or more)  -> per-file results
    GET    /api/documents           indexed documents
    DELETE /api/documents?source=…  remove a document from the registry, Milvus and BM25
    GET    /api/status              models, Milvus URI, counts (never secrets)
    GET    /api/health              liveness (no login needed)

When ``ui.auth_user``/``ui.auth_password`` are set, the UI asks for them and ``/api/*`` (except
health; the docs at /api/docs and /api/openapi.json included) requires the same credentials with
HTTP basic auth.

Questions and search queries are cleaned (control characters out) and cut to
``answer.max_question_tokens`` tokens; an empty one is a 422 with a message, never a 5xx.
"""
from __future__ import annotations

from .app import create_api
from .schemas import MAX_JSON_BODY_BYTES, MAX_QUESTION_CHARS

__all__ = ["MAX_JSON_BODY_BYTES", "MAX_QUESTION_CHARS", "create_api"]
