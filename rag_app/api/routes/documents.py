"""``/api/documents``: upload (multipart), list and delete indexed documents."""
from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status

from rag_app.config import UISettings

from ..deps import LOGIN, Service


def upload_body_limit(ui: UISettings) -> int:
    """Bytes a multipart upload may have: the per-upload limit plus room for the framing."""
    return (ui.max_request_mb + 1) * 1024 * 1024


def documents_router(ui: UISettings) -> APIRouter:
    """The routes; the upload size limit is part of the route, so it is built from the settings."""
    router = APIRouter(prefix="/api", dependencies=LOGIN)

    @router.get("/documents")
    def list_documents(service: Service) -> dict[str, Any]:
        return {"documents": service.documents()}

    # Multipart bodies are spooled to disk before the endpoint runs: max_body_size stops a body
    # without Content-Length (chunked) at the limit; the app's DeclaredSizeLimit refuses a declared
    # oversize before a byte is read.
    @router.post("/documents", max_body_size=upload_body_limit(ui))
    async def upload_documents(
        service: Service, files: Annotated[list[UploadFile], File(description="documents to index")]
    ) -> Any:
        if len(files) > ui.max_files_per_request:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"at most {ui.max_files_per_request} files per request"
            )
        # The spooled files themselves, not their bytes: the service checks sizes and the first KiB
        # before reading, and its worker reads one accepted file at a time.
        job = service.upload([(f.filename or "upload", f.file) for f in files])
        await anyio.to_thread.run_sync(job.wait)  # in a worker thread: the event loop keeps serving chat
        return {"results": [r.to_dict() for r in job.snapshot()], "state": job.state, "error": job.error}

    @router.delete("/documents")
    def delete_document(service: Service, source: str = Query(..., min_length=1)) -> dict[str, Any]:
        removed = service.delete(source)
        if removed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not indexed: {source}")
        return {"source": source, "chunks_removed": removed}

    return router
