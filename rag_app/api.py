"""FastAPI app: JSON endpoints under ``/api`` and the Gradio UI mounted at ``/``.

    POST   /api/ask                 {"question": "...", "history": [{"role": "user", "content": "..."}, ...],
                                     "stream": false}  -> answer, citations, sources (stream: SSE events)
    POST   /api/documents           multipart "files" (one or more)  -> per-file results
    GET    /api/documents           indexed documents
    DELETE /api/documents?source=…  remove a document from the registry, Milvus and BM25
    GET    /api/status              models, Milvus URI, counts (never secrets)
    GET    /api/health              liveness (no login needed)

When ``ui.auth_user``/``ui.auth_password`` are set, the UI asks for them and ``/api/*`` (except
health) requires the same credentials with HTTP basic auth.
"""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Query, UploadFile, status
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from rag_app.answering import Answerer, ErrorEvent, FinalEvent
from rag_app.config import Settings
from rag_app.knowledge_base import KnowledgeBase
from rag_app.llm import LLMBackend, make_llm
from rag_app.ui.services import RagService

log = logging.getLogger(__name__)

_READ_CHUNK = 1024 * 1024
# Module level: the endpoint annotations below are strings (postponed evaluation) resolved here.
_basic = HTTPBasic(auto_error=False, realm="knowledge base")


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=8000)
    history: list[ChatTurn] = Field(default_factory=list, max_length=200)
    stream: bool = False


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


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

    app = FastAPI(title="Knowledge base Q&A", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.service = svc
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

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

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

    @app.post("/api/ask", dependencies=auth, response_model=None)
    def ask(req: AskRequest, stream: bool = Query(False)) -> Any:
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
            return JSONResponse({"error": result.message}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        assert isinstance(result, FinalEvent)
        return result.to_dict()

    @app.get("/api/documents", dependencies=auth)
    def list_documents() -> dict[str, Any]:
        return {"documents": svc.documents()}

    @app.post("/api/documents", dependencies=auth)
    async def upload_documents(files: Annotated[list[UploadFile], File(description="documents to index")]) -> Any:
        if len(files) > ui.max_files_per_request:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"at most {ui.max_files_per_request} files per request"
            )
        limit = ui.max_upload_mb * 1024 * 1024
        inputs: list[tuple[str, bytes]] = []
        for f in files:
            # Read at most limit + 1 bytes: enough to know a file is too large without holding it all.
            data = bytearray()
            while len(data) <= limit:
                block = await f.read(_READ_CHUNK)
                if not block:
                    break
                data.extend(block)
            inputs.append((f.filename or "upload", bytes(data)))
        job = svc.submit_uploads(inputs)

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
