"""The llama-cpp-python backend: the GGUF run directly, when ``llama_cpp`` is installed.

One generation at a time per model: a llama.cpp context is not thread-safe.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import ChatMessage, LLMBackend, LLMUnavailableError, apply_stop, plain_messages
from .local_models import check_packaged_name, model_label, resolve_cache_dir
from .packaged_qwen import PACKAGED_PREFIX, PackagedModelError, ensure_packaged_gguf
from .settings import LLMSettings

logger = logging.getLogger(__name__)


class LlamaCppLLM(LLMBackend):
    """llama-cpp-python on the GGUF directly (Q4_K_M: much faster than fp32 transformers on CPU).

    Optional: used only when ``llama_cpp`` is importable. NOT exercised by the test suite here
    (the package is not installed in this environment).
    """

    def __init__(self, settings: LLMSettings, cache_dir: Path | None = None) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "The 'llamacpp' LLM backend needs llama-cpp-python: pip install llama-cpp-python "
                "(or use backend 'local')"
            ) from exc
        self.settings = settings
        self.cache_dir = resolve_cache_dir(settings, cache_dir)
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # a Llama context is not thread-safe

    @property
    def name(self) -> str:
        return "llamacpp:" + model_label(self.settings.model)

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        with self._load_lock:
            if self._llm is not None:
                return
            import llama_cpp

            model = self.settings.model
            try:
                if model.startswith(PACKAGED_PREFIX):
                    check_packaged_name(model)
                    path = ensure_packaged_gguf(self.cache_dir)
                else:
                    path = Path(model).expanduser()
                    if path.suffix.lower() != ".gguf" or not path.is_file():
                        raise LLMUnavailableError(f"The llamacpp backend needs a .gguf file, got {model!r}")
                t0 = time.perf_counter()
                self._llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.settings.context_window,
                    n_threads=self.settings.num_threads,
                    verbose=False,  # llama.cpp prints to stderr otherwise
                )
            except (OSError, ValueError, PackagedModelError) as exc:
                raise LLMUnavailableError(f"llama.cpp could not load {model!r}: {exc}") from exc
            logger.info("Loaded LLM %s in %.1f s", self.name, time.perf_counter() - t0)

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        return apply_stop(self._raw_stream(messages, max_new_tokens, stop), stop)

    def _raw_stream(
        self, messages: list[ChatMessage], max_new_tokens: int | None, stop: list[str] | None
    ) -> Iterator[str]:
        self.warm_up()
        with self._gen_lock:
            chunks = self._llm.create_chat_completion(
                messages=plain_messages(messages),
                stream=True,
                max_tokens=max_new_tokens or self.settings.max_new_tokens,
                temperature=max(self.settings.temperature, 0.0),  # 0 -> greedy in llama.cpp
                stop=[s for s in (stop or []) if s] or None,
            )
            try:
                for chunk in chunks:
                    choices = chunk.get("choices") or []
                    content = (choices[0].get("delta") or {}).get("content") if choices else None
                    if content:
                        yield content
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # stops token generation when the consumer leaves early
