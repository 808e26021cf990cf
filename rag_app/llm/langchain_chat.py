"""LangChain adapter: any :class:`LLMBackend` as a ``BaseChatModel``, for users' own LCEL chains.

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.output_parsers import StrOutputParser
    chain = ChatPromptTemplate.from_messages([("system", "..."), ("human", "{q}")]) \\
        | RagChatModel(backend=make_llm(settings, data_dir)) | StrOutputParser()
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages import (
    ChatMessage as LCChatMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from .base import ChatMessage, LLMBackend

_ROLE_ALIASES = {"human": "user", "ai": "assistant", "developer": "system"}


def _text_of(content: str | list[Any]) -> str:
    # Multimodal/content-block messages: keep the text parts (backends here are text-only).
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_chat_messages(messages: list[BaseMessage]) -> list[ChatMessage]:
    """LangChain System/Human/AI (and generic role) messages -> backend ``ChatMessage`` dicts."""
    out: list[ChatMessage] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, LCChatMessage):
            role = _ROLE_ALIASES.get(m.role, m.role)
            if role not in ("system", "user", "assistant"):
                raise ValueError(f"Unsupported chat role {m.role!r}")
        else:
            raise ValueError(f"Unsupported message type {type(m).__name__} (tools are not supported)")
        out.append(ChatMessage(role=role, content=_text_of(m.content)))  # type: ignore[typeddict-item]
    return out


class RagChatModel(BaseChatModel):
    """A LangChain chat model backed by one of this app's LLM backends (local, OpenAI-compatible, llama.cpp)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: LLMBackend
    max_new_tokens: int | None = None  # None: the backend's configured default

    @property
    def _llm_type(self) -> str:
        return "rag-app"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "max_new_tokens": self.max_new_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = self._stream(messages, stop, run_manager, **kwargs)
        text = "".join(str(c.message.content) for c in chunks)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        max_new = kwargs.get("max_new_tokens", self.max_new_tokens)
        deltas = self.backend.stream(to_chat_messages(messages), max_new_tokens=max_new, stop=stop)
        for delta in deltas:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
            if run_manager is not None:
                run_manager.on_llm_new_token(delta, chunk=chunk)
            yield chunk
