"""``/api/me`` (who am I, my API tokens, my password) and ``/api/users`` (admins), ``/api/audit``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, status

from ..deps import PrincipalDep, WorkspaceDep
from ..schemas import NewPassword, NewToken, NewUser

router = APIRouter(prefix="/api")


@router.get("/me")
def me(workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"name": principal.name, "is_admin": principal.is_admin, "accounts": workspace.accounts_enabled,
            "knowledge_bases": {r.id: role for r, role in workspace.knowledge_bases(principal)}}


@router.put("/me/password")
def change_my_password(req: NewPassword, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    workspace.set_password(principal, principal.name, req.password)
    return {"changed": True}


@router.get("/me/tokens")
def my_tokens(workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"tokens": [t.to_dict() for t in workspace.tokens(principal)]}


@router.post("/me/tokens", status_code=status.HTTP_201_CREATED)
def new_token(req: NewToken, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    """A new API token; the response is the only time it is shown."""
    token, info = workspace.create_token(principal, req.name)
    return {"token": token, **info.to_dict()}


@router.delete("/me/tokens/{token_id}")
def revoke_token(token_id: int, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    if not workspace.revoke_token(principal, token_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    return {"revoked": token_id}


@router.get("/users")
def list_users(workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"users": [u.to_dict() for u in workspace.users(principal)]}


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(req: NewUser, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return workspace.create_user(principal, req.name, req.password, is_admin=req.is_admin).to_dict()


@router.put("/users/{name}/password")
def set_password(name: str, req: NewPassword, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    workspace.set_password(principal, name, req.password)
    return {"changed": True}


@router.delete("/users/{name}")
def delete_user(name: str, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    workspace.delete_user(principal, name)
    return {"deleted": name}


@router.get("/audit")
def audit(workspace: WorkspaceDep, principal: PrincipalDep, limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    """Every knowledge base's audit entries (admins)."""
    return {"entries": [e.to_dict() for e in workspace.audit_entries(principal, None, limit)]}
