"""Health (no login), status, jobs, "sync now", and the API docs behind the login."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from ..deps import LOGIN, Service

public = APIRouter(prefix="/api")
router = APIRouter(prefix="/api", dependencies=LOGIN)


@public.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/status")
def get_status(service: Service) -> dict[str, Any]:
    return service.status()


@router.get("/jobs")
def get_jobs(service: Service, limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    """The newest background jobs of every replica (uploads, syncs, deletions, tuning, calibration)."""
    return {"jobs": service.recent_jobs(limit)}


@router.post("/sync")
def post_sync(service: Service, wait: bool = False) -> dict[str, Any]:
    """Run the configured folder sync now; ``wait=true`` returns after it finished."""
    try:
        return service.sync(wait=wait, timeout=600 if wait else None)
    except RuntimeError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title=f"{request.app.title} API")
