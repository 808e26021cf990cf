"""Dependencies of the API routes: the workspace, the principal of the request, and the knowledge
base a route works on.

Credentials: ``Authorization: Bearer <API token>`` (a user's token, ``/api/me/tokens``) or HTTP
basic with a user's name and password. Without accounts (the one-user setup) no credentials are
needed and every request is the local principal's.
"""
from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from ingest.state.schema import DEFAULT_KB
from rag_app.service import Principal, Workspace


def get_workspace(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]


def get_principal(request: Request, workspace: WorkspaceDep) -> Principal:
    """Who sent the request; 401 when accounts exist and the credentials name none of them."""
    principal = workspace.anonymous()  # the one-user setup: credentials are not asked for
    if principal is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            principal = workspace.token_login(value.strip())
        elif scheme.lower() == "basic":
            principal = _basic_login(value.strip(), workspace)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required",
                            headers={"WWW-Authenticate": 'Basic realm="knowledge base"'})
    return principal


def _basic_login(value: str, workspace: Workspace) -> Principal | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return workspace.login(name, password) if sep else None


PrincipalDep = Annotated[Principal, Depends(get_principal)]
LOGIN = [Depends(get_principal)]


def kb_id(kb: str = DEFAULT_KB) -> str:
    """The knowledge base of a route: the ``{kb}`` of ``/api/kbs/{kb}/...``, or ``?kb=`` (default: the
    default knowledge base) on the routes directly under ``/api``."""
    return kb


KbId = Annotated[str, Depends(kb_id)]

