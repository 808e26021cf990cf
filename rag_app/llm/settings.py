"""Serialisable settings of the answer-generating LLM (composed by the app's top-level settings)."""
from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from .packaged_qwen import PACKAGED_MODEL_ID


class LLMSettings(BaseModel):
    """Which LLM answers, and how.

    ``backend``:
      * ``ik_llama`` (default): ik_llama.cpp in process through the prebuilt ``ik-llama-cpp-python`` wheel;
        ``model`` = ``packaged:qwen2.5-coder-0.5b-instruct`` (the packaged GGUF, used as it is) or a
        ``.gguf`` file. On 2 cores it reads prompts about twice as fast as ``llamacpp``.
      * ``llamacpp``: mainline llama.cpp in process through the prebuilt ``xllamacpp`` wheel, same models.
        Both llama.cpp backends read the first token's probabilities (the answer check needs them).
      * ``local``: in-process transformers on CPU (models without a GGUF). ``model`` is ``packaged:<name>``
        (rebuilt once from the part wheels into ``cache_dir``), a local HF folder, a ``.gguf`` file
        (converted once into ``cache_dir``), or a hub id (needs network the first time).
      * ``openai``: any OpenAI-compatible ``/chat/completions`` server (vLLM, Ollama, DashScope, DeepSeek,
        OpenAI) at ``base_url``, model ``openai_model``.
    """

    backend: Literal["ik_llama", "llamacpp", "local", "openai"] = "ik_llama"
    model: str = PACKAGED_MODEL_ID
    base_url: str = "http://127.0.0.1:8000/v1"
    # SecretStr: masked in repr/str/JSON dumps so it never lands in logs. Read it with ``get_api_key()``.
    api_key: SecretStr = SecretStr("")
    openai_model: str = "qwen2.5-7b-instruct"
    temperature: float = Field(0.1, ge=0.0, le=2.0)  # <= 0 means greedy decoding
    max_new_tokens: int = Field(384, gt=0)
    # Prompt + answer tokens the model accepts (llama.cpp allocates its KV cache for this many).
    context_window: int = Field(8192, gt=0)
    timeout_s: float = Field(120, gt=0)  # per HTTP read / connect for the openai backend
    num_threads: int | None = Field(None, gt=0)  # torch / llama.cpp threads; None keeps the default
    cache_dir: str | None = None  # where packaged models are rebuilt; defaults to <data_dir>/models

    def get_api_key(self) -> str:
        """The configured key, else env ``OPENAI_API_KEY``, else "" (no Authorization header is sent)."""
        return self.api_key.get_secret_value() or os.environ.get("OPENAI_API_KEY", "")
