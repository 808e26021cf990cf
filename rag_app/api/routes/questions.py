"""``/api/ask`` (an answer, whole or streamed as server-sent events) and ``/api/search`` (chunks only)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse, StreamingResponse

from rag_app.answering import ErrorEvent
from rag_app.answering.question import BoundedQuestion
from rag_app.service import EmptyQuestionError, RagService

from ..deps import LOGIN, Service
from ..schemas import MAX_JSON_BODY_BYTES, MAX_QUESTION_CHARS, AskRequest, SearchRequest

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", dependencies=LOGIN)


def _prepared(service: RagService, question: str) -> BoundedQuestion:
    """The question as the answerer will use it; an empty one is the client's error (422)."""
    try:
        return service.prepare_question(question)
    except EmptyQuestionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/ask", response_model=None, max_body_size=MAX_JSON_BODY_BYTES)
def ask(req: AskRequest, service: Service, stream: bool = Query(False)) -> Any:
    question = _prepared(service, req.question)  # before a stream starts, so an empty one is a 422
    history = [t.model_dump() for t in req.history]
    if req.stream or stream:

        def events() -> Iterator[str]:
            # Sync generator: Starlette runs it in a thread pool, so the LLM never blocks the loop.
            for event in service.ask_stream(question, history):
                yield _sse(event.type, event.to_dict())

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    result = service.ask(question, history)
    if isinstance(result, ErrorEvent):
        code = (
            status.HTTP_422_UNPROCESSABLE_CONTENT
            if result.reason == "empty_question"
            else status.HTTP_503_SERVICE_UNAVAILABLE
        )
        return JSONResponse({"error": result.message, "reason": result.reason}, status_code=code)
    return result.to_dict()


def _search(service: RagService, query: str, top_k: int | None) -> dict[str, Any]:
    try:
        found = service.search(query, top_k)
    except EmptyQuestionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except Exception as exc:  # a Milvus server may be down: a message, not a traceback
        log.exception("search failed")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Search failed: {exc}") from exc
    result = found.result
    return {
        "query": result.query,
        "truncated": found.truncated,
        "has_evidence": result.has_evidence,
        "note": result.note,
        "candidates": result.candidates,
        "results": [{"rank": i, **c.to_dict()} for i, c in enumerate(result.chunks, start=1)],
        "below_threshold": [{"rank": i, **c.to_dict()} for i, c in enumerate(result.below_threshold, start=1)],
        "timings_ms": result.timings_ms,
    }


@router.get("/search")
def get_search(
    service: Service,
    query: str = Query(..., min_length=1, max_length=MAX_QUESTION_CHARS),
    top_k: int | None = Query(None, ge=1, le=50),
) -> dict[str, Any]:
    """The chunks that pass the relevance threshold, best first, with every leg's score."""
    return _search(service, query, top_k)


@router.post("/search", max_body_size=MAX_JSON_BODY_BYTES)
def post_search(req: SearchRequest, service: Service) -> dict[str, Any]:
    return _search(service, req.query, req.top_k)
