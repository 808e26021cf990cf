"""``/api/kbs``: knowledge bases (list, create, change, delete), members, feedback, audit, previews."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response

from ..deps import KbId, PrincipalDep, WorkspaceDep
from ..schemas import KnowledgeBaseChange, Membership, NewKnowledgeBase

catalog = APIRouter(prefix="/api")
router = APIRouter()  # under /api/kbs/{kb}


@catalog.get("/kbs")
def list_knowledge_bases(workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    """The knowledge bases this user may see, with their role in each."""
    return {"knowledge_bases": [{**r.to_dict(), "role": role} for r, role in workspace.knowledge_bases(principal)]}


@catalog.post("/kbs", status_code=status.HTTP_201_CREATED)
def create_knowledge_base(req: NewKnowledgeBase, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return workspace.create_knowledge_base(principal, req.name, req.description).to_dict()


@router.get("")
def get_knowledge_base(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    record = workspace.require(principal, kb, "reader")
    return {**record.to_dict(), "role": workspace.role(principal, kb)}


@router.patch("")
def change_knowledge_base(req: KnowledgeBaseChange, workspace: WorkspaceDep, principal: PrincipalDep,
                          kb: KbId) -> dict[str, Any]:
    return workspace.update_knowledge_base(principal, kb, **req.model_dump(exclude_none=True)).to_dict()


@router.delete("")
def delete_knowledge_base(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    return workspace.delete_knowledge_base(principal, kb)


@router.get("/members")
def list_members(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    return {"members": [{"user": u.name, "role": role} for u, role in workspace.members(principal, kb)]}


@router.put("/members")
def set_member(req: Membership, workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    workspace.set_member(principal, kb, req.user, req.role)
    return {"user": req.user, "role": req.role}


@router.delete("/members")
def remove_member(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
                  user: str = Query(..., min_length=1)) -> dict[str, Any]:
    if not workspace.remove_member(principal, kb, user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{user} is not a member")
    return {"user": user, "removed": True}


@router.get("/feedback")
def list_feedback(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId) -> dict[str, Any]:
    return {"feedback": [item.to_dict() for item in workspace.feedback(principal, kb)]}


@router.get("/feedback/export")
def export_feedback(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
                    format: Literal["judged", "training"] = "judged") -> Response:
    """``judged``: a zipped BEIR folder for ``rag-eval``; ``training``: JSONL for ``rag-tune run --data``."""
    if format == "training":
        lines = workspace.feedback_training_lines(principal, kb)
        return Response("".join(line + "\n" for line in lines), media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="feedback-{kb}.jsonl"'})
    return Response(workspace.feedback_judged_questions(principal, kb), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="feedback-{kb}.zip"'})


@router.get("/audit")
def audit(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId,
          limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    return {"entries": [e.to_dict() for e in workspace.audit_entries(principal, kb, limit)]}


@router.get("/chunks/{chunk_id}/preview")
def preview(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId, chunk_id: str) -> dict[str, Any]:
    """The cited chunk among its neighbours; ``page_image`` links the highlighted PDF page when there is one."""
    found = workspace.preview(principal, kb, chunk_id)
    return {"kb": kb, "chunk": found.chunk, "context": found.context, "page_note": found.page_note,
            "page_image": f"/api/kbs/{kb}/chunks/{chunk_id}/page.png" if found.page_png else None}


@router.get("/chunks/{chunk_id}/page.png")
def preview_page(workspace: WorkspaceDep, principal: PrincipalDep, kb: KbId, chunk_id: str) -> Response:
    found = workspace.preview(principal, kb, chunk_id)
    if found.page_png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, found.page_note or "this chunk has no page image")
    return Response(found.page_png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
