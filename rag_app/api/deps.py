"""Dependencies of the API routes: the application service and the login check."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from rag_app.service import RagService

_basic = HTTPBasic(auto_error=False, realm="knowledge base")


def get_service(request: Request) -> RagService:
    service: RagService = request.app.state.service
    return service


Service = Annotated[RagService, Depends(get_service)]


def require_login(service: Service, creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> None:
    """HTTP basic auth with ``ui.auth_user``/``ui.auth_password`` when they are set."""
    ui = service.settings.ui
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


LOGIN = [Depends(require_login)]
