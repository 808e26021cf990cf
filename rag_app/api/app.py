"""The JSON API as a FastAPI app over one :class:`~rag_app.service.RagService`."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from rag_app.service import RagService

from .errors import DeclaredSizeLimit, validation_error
from .routes import documents, questions, system


def create_api(service: RagService) -> FastAPI:
    """Routes under ``/api``; the docs are served by routes behind the login like the rest."""
    ui = service.settings.ui
    app = FastAPI(title="Knowledge base Q&A", version="1", docs_url=None, openapi_url=None)
    app.state.service = service
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(
        DeclaredSizeLimit,
        path="/api/documents",
        limit=documents.upload_body_limit(ui),
        message=f"upload larger than the {ui.max_request_mb} MB limit per upload",
    )
    app.include_router(system.public)
    app.include_router(system.router)
    app.include_router(questions.router)
    app.include_router(documents.documents_router(ui))
    return app
