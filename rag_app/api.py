"""FastAPI app: JSON endpoints under ``/api`` and the Gradio UI mounted at ``/``.

    POST   /api/ask                 {"question": "...", "history": [{"role": "user", "content": "..."}, ...],
                                     "stream": false}  -> answer, citations, sources (stream: SSE events)
    GET    /api/search?query=…&top_k=5
    POST   /api/search              {"query": "...", "top_k": 5}  -> the retrieved chunks with their scores
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

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from rag_app.answering import Answerer, ErrorEvent, FinalEvent
from rag_app.answering.prompt import chunk_scores, source_label
from rag_app.answering.question import BoundedQuestion
from rag_app.config import Settings
from rag_app.knowledge_base import KnowledgeBase
from rag_app.llm import LLMBackend, make_llm
from rag_app.retrieval.hybrid import RetrievedChunk
from rag_app.ui.services import RagService

log = logging.getLogger(__name__)

# Module level: the endpoint annotations below are strings (postponed evaluation) resolved here.
_basic = HTTPBasic(auto_error=False, realm="knowledge base")


# A request-size guard only (longer is a 422): every question is cut to answer.max_question_tokens
# tokens before it is used, so a pasted 100k-character document is answered, from its beginning.
MAX_QUESTION_CHARS = 1_000_000
# Whole JSON bodies of /api/ask and /api/search: such a question with history, even \u-escaped,
# fits; a bigger body is refused (413) before it is read into memory.
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
_EMPTY_QUESTION = "Please enter a question: it is empty (or only whitespace and control characters)."


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_QUESTION_CHARS)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    history: list[ChatTurn] = Field(default_factory=list, max_length=200)
    stream: bool = False


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    top_k: int | None = Field(None, ge=1, le=50)  # default: retrieval.top_k


class _DeclaredSizeLimit:
    """ASGI middleware: 413 for a POST to ``path`` whose Content-Length is over ``limit``."""

    def __init__(self, app: Any, path: str, limit: int, message: str) -> None:
        self.app, self.path, self.limit, self.message = app, path, limit, message

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                response = JSONResponse({"detail": self.message}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _validation_error(request: Any, exc: RequestValidationError) -> Response:
    """422 with each error's location and message. FastAPI's default echoes the offending input: a
    megabyte-long question back to the client, or a lone surrogate that cannot be encoded (a 500)."""
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    # ensure_ascii: whatever a message quotes, the body is always encodable.
    body = json.dumps({"detail": errors})
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


def _search_hit(rank: int, chunk: RetrievedChunk) -> dict[str, Any]:
    return {
        "rank": rank,
        "source": chunk.source,
        "file": source_label(chunk.source),
        "page": chunk.page,
        "section": chunk.section,
        "location": chunk.location,
        "chunk_id": chunk.chunk_id,
        "text": chunk.text,
        "scores": chunk_scores(chunk),
    }


def create_service(settings: Settings, kb: KnowledgeBase, llm: LLMBackend | None = None) -> RagService:
    """A service over a warmed knowledge base. Without ``llm`` the configured backend is built on
    the first question that needs it, so the server starts without loading a model."""
    backend = llm if llm is not None else (lambda: make_llm(settings.llm, settings.data_dir))
    return RagService(settings, kb, Answerer(kb, backend, settings.answer))


def create_app(
    settings: Settings,
    kb: KnowledgeBase | None = None,
    *,
    llm: LLMBackend | None = None,
    service: RagService | None = None,
    mount_ui: bool = True,
) -> FastAPI:
    """The whole app. ``kb`` defaults to a new, warmed KnowledgeBase over ``settings``."""
    if service is None:
        if kb is None:
            kb = KnowledgeBase(settings).warm_up()
        service = create_service(settings, kb, llm)
    svc = service
    ui = settings.ui

    # The docs are served by the routes below, behind the login like the rest of /api.
    app = FastAPI(title="Knowledge base Q&A", version="1", docs_url=None, openapi_url=None)
    app.state.service = svc
    app.add_exception_handler(RequestValidationError, _validation_error)

    def require_login(creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> None:
        if not ui.auth_enabled:
            return
        # compare_digest on both fields: no timing hint about which one was wrong.
        ok = creds is not None and (
            secrets.compare_digest(creds.username.encode(), ui.auth_user.encode())
            & secrets.compare_digest(creds.password.encode(), ui.auth_password.get_secret_value().encode())
        )
        if not ok:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "login required",
                headers={"WWW-Authenticate": 'Basic realm="knowledge base"'},
            )

    auth = [Depends(require_login)]

    def prepared(question: str) -> BoundedQuestion:
        bounded = svc.answerer.prepare_question(question)
        if bounded is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _EMPTY_QUESTION)
        return bounded

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/api/openapi.json", dependencies=auth, include_in_schema=False)
    def openapi_schema() -> dict[str, Any]:
        return app.openapi()

    @app.get("/api/docs", dependencies=auth, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title=f"{app.title} API")

    @app.post("/api/sync", dependencies=auth)
    def post_sync(wait: bool = False) -> dict[str, Any]:
        """Run the configured folder sync now; ``wait=true`` returns after it finished."""
        try:
            return svc.sync_now(wait=wait, timeout=600 if wait else None)
        except RuntimeError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    @app.get("/api/status", dependencies=auth)
    def get_status() -> dict[str, Any]:
        return svc.status()

    @app.post("/api/ask", dependencies=auth, response_model=None, max_body_size=MAX_JSON_BODY_BYTES)
    def ask(req: AskRequest, stream: bool = Query(False)) -> Any:
        prepared(req.question)  # an empty question is the client's error (422), also before a stream
        history = [t.model_dump() for t in req.history]
        if req.stream or stream:

            def events() -> Iterator[str]:
                # Sync generator: Starlette runs it in a thread pool, so the LLM never blocks the loop.
                for event in svc.answerer.stream(req.question, history):
                    yield _sse(event.type, event.to_dict())

            return StreamingResponse(
                events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
        result = svc.answerer.answer(req.question, history)
        if isinstance(result, ErrorEvent):
            code = (
                status.HTTP_422_UNPROCESSABLE_CONTENT
                if result.reason == "empty_question"
                else status.HTTP_503_SERVICE_UNAVAILABLE
            )
            return JSONResponse({"error": result.message, "reason": result.reason}, status_code=code)
        assert isinstance(result, FinalEvent)
        return result.to_dict()

    def search(query: str, top_k: int | None) -> dict[str, Any]:
        question = prepared(query)
        if svc.kb.retriever is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the knowledge base is not ready")
        try:
            result = svc.kb.retriever.run(question.text, top_k=top_k)
        except Exception as exc:  # a Milvus server may be down: a message, not a traceback
            log.exception("search failed")
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Search failed: {exc}") from exc
        return {
            "query": result.query,
            "truncated": question.truncated,
            "has_evidence": result.has_evidence,
            "note": result.note,
            "candidates": result.candidates,
            "results": [_search_hit(i, c) for i, c in enumerate(result.chunks, start=1)],
            "below_threshold": [_search_hit(i, c) for i, c in enumerate(result.below_threshold, start=1)],
            "timings_ms": result.timings_ms,
        }

    @app.get("/api/search", dependencies=auth)
    def get_search(
        query: str = Query(..., min_length=1, max_length=MAX_QUESTION_CHARS),
        top_k: int | None = Query(None, ge=1, le=50),
    ) -> dict[str, Any]:
        """The chunks that pass the relevance threshold, best first, with every leg's score."""
        return search(query, top_k)

    @app.post("/api/search", dependencies=auth, max_body_size=MAX_JSON_BODY_BYTES)
    def post_search(req: SearchRequest) -> dict[str, Any]:
        return search(req.query, req.top_k)

    @app.get("/api/documents", dependencies=auth)
    def list_documents() -> dict[str, Any]:
        return {"documents": svc.documents()}

    # Multipart bodies are spooled to disk before the endpoint runs: refuse an upload whose declared
    # size is over the per-upload limit (plus room for the multipart framing) before reading it, with
    # a clear message; max_body_size also stops a body without Content-Length (chunked) at the limit.
    upload_body_limit = (ui.max_request_mb + 1) * 1024 * 1024
    app.add_middleware(
        _DeclaredSizeLimit,
        path="/api/documents",
        limit=upload_body_limit,
        message=f"upload larger than the {ui.max_request_mb} MB limit per upload",
    )

    @app.post("/api/documents", dependencies=auth, max_body_size=upload_body_limit)
    async def upload_documents(files: Annotated[list[UploadFile], File(description="documents to index")]) -> Any:
        if len(files) > ui.max_files_per_request:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"at most {ui.max_files_per_request} files per request"
            )
        # The spooled files themselves, not their bytes: the service checks sizes and the first KiB
        # before reading, and its worker reads one accepted file at a time.
        job = svc.submit_uploads([(f.filename or "upload", f.file) for f in files])

        import anyio.to_thread  # waits in a worker thread: the event loop keeps serving chat

        await anyio.to_thread.run_sync(job.wait)
        results = [r.to_dict() for r in job.snapshot()]
        return {"results": results, "state": job.state, "error": job.error}

    @app.delete("/api/documents", dependencies=auth)
    def delete_document(source: str = Query(..., min_length=1)) -> dict[str, Any]:
        removed = svc.delete(source)
        if removed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not indexed: {source}")
        return {"source": source, "chunks_removed": removed}

    if mount_ui:
        from rag_app.ui.app import build_ui, mount_kwargs  # first: it turns analytics off before gradio loads

        import gradio as gr

        app = gr.mount_gradio_app(app, build_ui(svc), path="/", **mount_kwargs(svc))
    return app
