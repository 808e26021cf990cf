"""Answer-generating LLMs behind one streaming interface.

``make_llm(settings, data_dir)`` builds the configured backend:

* ``ik_llama``  -> :class:`IkLlamaLLM` (default: the packaged Qwen2.5-Coder-0.5B-Instruct GGUF, ik_llama.cpp)
* ``llamacpp``  -> :class:`LlamaCppLLM` (the same GGUFs through mainline llama.cpp, ``xllamacpp``)
* ``local``     -> :class:`TransformersLLM` (transformers, fp32 CPU: models without a GGUF)
* ``openai``    -> :class:`OpenAICompatibleLLM` (vLLM, Ollama, DashScope, DeepSeek, OpenAI)

:class:`RagChatModel` (``rag_app.llm.langchain_chat``) wraps any backend as a LangChain chat model.
Heavy modules (torch, transformers, langchain) are imported lazily.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import ChatMessage, LLMBackend, LLMUnavailableError, approx_token_count
from .settings import LLMSettings

if TYPE_CHECKING:
    from .ik_llama_backend import IkLlamaLLM
    from .langchain_chat import RagChatModel
    from .llamacpp_backend import LlamaCppLLM
    from .openai_backend import OpenAICompatibleLLM
    from .transformers_backend import TransformersLLM

logger = logging.getLogger(__name__)

__all__ = [
    "ChatMessage",
    "LLMBackend",
    "LLMSettings",
    "IkLlamaLLM",
    "LLMUnavailableError",
    "LlamaCppLLM",
    "OpenAICompatibleLLM",
    "RagChatModel",
    "TransformersLLM",
    "approx_token_count",
    "make_llm",
]


def model_cache_dir(settings: LLMSettings, data_dir: Path) -> Path:
    """Where packaged/GGUF models are rebuilt: ``settings.cache_dir`` or ``<data_dir>/models``."""
    return Path(settings.cache_dir).expanduser() if settings.cache_dir else Path(data_dir) / "models"


def make_llm(settings: LLMSettings, data_dir: Path) -> LLMBackend:
    """Build (not load) the configured backend; call ``warm_up()`` to load it ahead of the first question."""
    cache_dir = model_cache_dir(settings, data_dir)
    if settings.backend == "local":
        from .transformers_backend import TransformersLLM

        return TransformersLLM(settings, cache_dir)
    if settings.backend == "openai":
        from .openai_backend import OpenAICompatibleLLM

        return OpenAICompatibleLLM(settings)
    if settings.backend == "llamacpp":
        from .llamacpp_backend import LlamaCppLLM

        return LlamaCppLLM(settings, cache_dir)
    if settings.backend == "ik_llama":
        from .ik_llama_backend import IkLlamaLLM

        return IkLlamaLLM(settings, cache_dir)
    raise ValueError(f"Unknown LLM backend {settings.backend!r}")


def __getattr__(name: str) -> Any:
    # Lazy re-exports: importing rag_app.llm must not pull in torch or langchain.
    if name == "TransformersLLM":
        from .transformers_backend import TransformersLLM

        return TransformersLLM
    if name == "LlamaCppLLM":
        from .llamacpp_backend import LlamaCppLLM

        return LlamaCppLLM
    if name == "IkLlamaLLM":
        from .ik_llama_backend import IkLlamaLLM

        return IkLlamaLLM
    if name == "OpenAICompatibleLLM":
        from .openai_backend import OpenAICompatibleLLM

        return OpenAICompatibleLLM
    if name == "RagChatModel":
        from .langchain_chat import RagChatModel

        return RagChatModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
