"""Health (no login), status, jobs, "sync now", and the API docs behind the login."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from ..deps import LOGIN, KbId, PrincipalDep, WorkspaceDep

public = APIRouter(prefix="/api")
docs = APIRouter(prefix="/api", dependencies=LOGIN)
router = APIRouter()  # per knowledge base


@public.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/status")
def get_status(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    return workspace.open_for(principal, kb, "reader").status()


@router.get("/jobs")
def get_jobs(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
             limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    """The newest background jobs of every replica (uploads, syncs, deletions, tuning, calibration)."""
    return {"jobs": workspace.open_for(principal, kb, "editor").recent_jobs(limit)}


@router.post("/sync")
def post_sync(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId, wait: bool = False) -> dict[str, Any]:
    """Run the configured folder sync now; ``wait=true`` returns after it finished."""
    try:
        return workspace.sync(principal, kb, wait=wait)
    except RuntimeError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@docs.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@docs.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title=f"{request.app.title} API")
