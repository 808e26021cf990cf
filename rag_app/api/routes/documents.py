"""``documents``: upload (multipart), list, download and delete a knowledge base's documents."""
from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, HTTPException, Query, UploadFile, status
from fastapi.responses import FileResponse

from rag_app.config import UISettings
from rag_app.service import display_name

from ..deps import KbId, PrincipalDep, WorkspaceDep


def upload_body_limit(ui: UISettings) -> int:
    """Bytes a multipart upload may have: the per-upload limit plus room for the framing."""
    return (ui.max_request_mb + 1) * 1024 * 1024


def documents_router(ui: UISettings) -> APIRouter:
    """The routes; the upload size limit is part of the route, so it is built from the settings."""
    router = APIRouter()

    @router.get("/documents")
    def list_documents(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
        return {"documents": workspace.documents(principal, kb)}

    # Multipart bodies are spooled to disk before the endpoint runs: max_body_size stops a body
    # without Content-Length (chunked) at the limit; the app's DeclaredSizeLimit refuses a declared
    # oversize before a byte is read.
    @router.post("/documents", max_body_size=upload_body_limit(ui))
    async def upload_documents(
        workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
        files: Annotated[list[UploadFile], File(description="documents to index")],
    ) -> Any:
        if len(files) > ui.max_files_per_request:
            raise HTTPException(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, f"at most {ui.max_files_per_request} files per request"
            )
        # The spooled files themselves, not their bytes: the service checks sizes and the first KiB
        # before reading, and its worker reads one accepted file at a time.
        job = await anyio.to_thread.run_sync(
            lambda: workspace.upload(principal, kb, [(f.filename or "upload", f.file) for f in files]))
        await anyio.to_thread.run_sync(job.wait)  # in a worker thread: the event loop keeps serving chat
        return {"results": [r.to_dict() for r in job.snapshot()], "state": job.state, "error": job.error}

    @router.get("/documents/file")
    def download_document(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
                          source: str = Query(..., min_length=1)) -> FileResponse:
        """The file of an indexed document, when the app keeps it (an upload, or the synced folder's)."""
        path = workspace.document_file(principal, kb, source)
        return FileResponse(path, filename=display_name(source))

    @router.delete("/documents")
    def delete_document(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
                        source: str = Query(..., min_length=1)) -> dict[str, Any]:
        removed = workspace.delete_document(principal, kb, source)
        if removed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not indexed: {source}")
        return {"source": source, "chunks_removed": removed}

    return router
