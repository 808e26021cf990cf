"""``ask`` (an answer, whole or streamed as server-sent events) and ``search`` (chunks only), on one
knowledge base (``/api/kbs/{kb}/...``, or ``/api/...?kb=``) or, for ``ask``, several (``kbs``)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse, StreamingResponse

from rag_app.answering import ErrorEvent
from rag_app.answering.question import BoundedQuestion
from rag_app.service import EmptyQuestionError, Forbidden, NotFound, Principal, Workspace

from ..deps import KbId, PrincipalDep, WorkspaceDep
from ..schemas import MAX_JSON_BODY_BYTES, MAX_QUESTION_CHARS, AskRequest, SearchRequest

log = logging.getLogger(__name__)
router = APIRouter()


def _prepared(workspace: Workspace, question: str) -> BoundedQuestion:
    """The question as the answerer will use it; an empty one is the client's error (422)."""
    try:
        return workspace.prepare_question(question)
    except EmptyQuestionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def answer(workspace: Workspace, principal: Principal, req: AskRequest, kbs: list[str] | None,
           conversation_id: str | None, stream: bool) -> Any:
    """An answer as JSON or as server-sent events; access is checked before a stream starts."""
    question = _prepared(workspace, req.question)  # before a stream starts, so an empty one is a 422
    history = [t.model_dump() for t in req.history]
    keep = req.keep or conversation_id is not None
    if req.stream or stream:
        events = workspace.ask_stream(principal, question, kbs=kbs, conversation_id=conversation_id,
                                      history=history, keep=keep)

        def sse() -> Iterator[str]:
            # Sync generator: Starlette runs it in a thread pool, so the LLM never blocks the loop.
            for event in events:
                yield _sse(event.type, event.to_dict())

        return StreamingResponse(
            sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    result, kept = workspace.ask(principal, question, kbs=kbs, conversation_id=conversation_id, history=history,
                                 keep=keep)
    saved = kept.to_dict() if kept else {}
    if isinstance(result, ErrorEvent):
        code = (
            status.HTTP_422_UNPROCESSABLE_CONTENT
            if result.reason == "empty_question"
            else status.HTTP_503_SERVICE_UNAVAILABLE
        )
        return JSONResponse({"error": result.message, "reason": result.reason, **saved}, status_code=code)
    return {**result.to_dict(), **saved}


@router.post("/ask", response_model=None, max_body_size=MAX_JSON_BODY_BYTES)
def ask(req: AskRequest, workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
        stream: bool = Query(False)) -> Any:
    """``kbs`` in the body searches several knowledge bases; ``conversation_id`` continues (and
    keeps) a conversation, ``keep`` starts a kept one."""
    return answer(workspace, principal, req, req.kbs or [kb], req.conversation_id, stream)


def _search(workspace: Workspace, principal: Principal, kb: str, query: str, top_k: int | None) -> dict[str, Any]:
    try:
        found = workspace.search(principal, kb, query, top_k)
    except EmptyQuestionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except (NotFound, Forbidden):
        raise
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
    workspace: WorkspaceDep,
    principal: PrincipalDep,
    kb: KbId,
    query: str = Query(..., min_length=1, max_length=MAX_QUESTION_CHARS),
    top_k: int | None = Query(None, ge=1, le=50),
) -> dict[str, Any]:
    """The chunks that pass the relevance threshold, best first, with every leg's score."""
    return _search(workspace, principal, kb, query, top_k)


@router.post("/search", max_body_size=MAX_JSON_BODY_BYTES)
def post_search(req: SearchRequest, workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    return _search(workspace, principal, kb, req.query, req.top_k)
