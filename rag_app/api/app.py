"""The JSON API as a FastAPI app over one :class:`~rag_app.service.workspace.Workspace`."""
from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError

from rag_app.service import Forbidden, NotFound, Workspace
from rag_app.team.accounts import AccountError
from rag_app.team.knowledge_bases import KnowledgeBaseError

from .deps import LOGIN
from .errors import DeclaredSizeLimit, client_error, validation_error
from .routes import accounts, conversations, documents, knowledge_bases, questions, system

PER_KB_PREFIXES = ("/api", "/api/kbs/{kb}")  # /api/... works on ?kb= (default: the default one)


def create_api(workspace: Workspace) -> FastAPI:
    """Routes under ``/api``; the docs are served by routes behind the login like the rest."""
    ui = workspace.settings.ui
    app = FastAPI(title="Knowledge base Q&A", version="2", docs_url=None, openapi_url=None)
    app.state.workspace = workspace
    app.state.service = workspace.default_service()
    app.add_exception_handler(RequestValidationError, validation_error)
    for error in (NotFound, Forbidden, KnowledgeBaseError, AccountError):
        app.add_exception_handler(error, client_error)
    for prefix in PER_KB_PREFIXES:
        app.add_middleware(
            DeclaredSizeLimit,
            path=prefix.replace("{kb}", "*") + "/documents",
            limit=documents.upload_body_limit(ui),
            message=f"upload larger than the {ui.max_request_mb} MB limit per upload",
        )
    app.include_router(system.public)
    app.include_router(system.docs)
    app.include_router(knowledge_bases.catalog, dependencies=LOGIN)
    app.include_router(accounts.router, dependencies=LOGIN)
    app.include_router(conversations.router, dependencies=LOGIN)
    per_kb = APIRouter(dependencies=LOGIN)
    per_kb.include_router(questions.router)
    per_kb.include_router(documents.documents_router(ui))
    per_kb.include_router(system.router)
    for prefix in PER_KB_PREFIXES:
        app.include_router(per_kb, prefix=prefix)
    app.include_router(knowledge_bases.router, prefix="/api/kbs/{kb}", dependencies=LOGIN)
    return app
