"""``/api/conversations``: a user's kept conversations, asking within one, and feedback on answers."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status

from ..deps import PrincipalDep, WorkspaceDep
from ..schemas import MAX_JSON_BODY_BYTES, AskRequest, ConversationAsk, FeedbackRequest, NewConversation, Rename
from .questions import answer

router = APIRouter(prefix="/api")


@router.get("/conversations")
def list_conversations(workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"conversations": [c.to_dict() for c in workspace.conversation_list(principal)]}


@router.post("/conversations", status_code=status.HTTP_201_CREATED)
def start_conversation(req: NewConversation, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    return workspace.start_conversation(principal, req.kbs, req.title).to_dict()


@router.get("/conversations/{conversation_id}")
def get_conversation(conversation_id: str, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    conversation, messages = workspace.conversation(principal, conversation_id)
    return {**conversation.to_dict(), "messages": [m.to_dict() for m in messages]}


@router.patch("/conversations/{conversation_id}")
def rename_conversation(conversation_id: str, req: Rename, workspace: WorkspaceDep,
                        principal: PrincipalDep) -> dict[str, Any]:
    workspace.rename_conversation(principal, conversation_id, req.title)
    return {"id": conversation_id, "title": req.title}


@router.delete("/conversations/{conversation_id}")
def delete_conversation(conversation_id: str, workspace: WorkspaceDep, principal: PrincipalDep) -> dict[str, Any]:
    workspace.delete_conversation(principal, conversation_id)
    return {"deleted": conversation_id}


@router.post("/conversations/{conversation_id}/ask", response_model=None, max_body_size=MAX_JSON_BODY_BYTES)
def ask_in_conversation(conversation_id: str, req: ConversationAsk, workspace: WorkspaceDep,
                        principal: PrincipalDep, stream: bool = Query(False)) -> Any:
    """The next question of a kept conversation: its own turns are the history, its knowledge bases searched."""
    return answer(workspace, principal, AskRequest(question=req.question, stream=req.stream), None,
                  conversation_id, stream)


@router.post("/messages/{message_id}/feedback")
def give_feedback(message_id: str, req: FeedbackRequest, workspace: WorkspaceDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    workspace.give_feedback(principal, message_id, 1 if req.vote == "up" else -1, req.comment)
    return {"message_id": message_id, "vote": req.vote}
