"""The llama.cpp backend: the GGUF run directly in process through ``xllamacpp`` (a prebuilt wheel).

``xllamacpp`` embeds llama.cpp's own server: requests are OpenAI-style dicts, streamed chunks come
back through a callback (returning True from it cancels the generation). One slot, so a request that
starts like the previous one (the rules and the quoted sources) only reads its new tokens.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import ChatMessage, LLMUnavailableError, apply_stop, plain_messages
from .gguf_backend import GgufBackend, gguf_model_path, option_probabilities
from .packaged_qwen import PackagedModelError
from .settings import LLMSettings
from .worker_stream import Emit, stream_from_worker

logger = logging.getLogger(__name__)

# How many alternatives of the first token are read to find the options of a verdict.
_TOP_LOGPROBS = 20


class LlamaCppLLM(GgufBackend):
    """llama.cpp on the GGUF as it is (Q4_K_M): no conversion, no fp32 copy.

    Measured on 2 cores with the packaged 0.5B model (BENCHMARKS.md, "Answer latency"): about 4x the
    prompt reading and decode speed of fp32 transformers, and the model loads in about a second.
    """

    label = "llamacpp"

    def __init__(self, settings: LLMSettings, cache_dir: Path | None = None) -> None:
        super().__init__(settings, cache_dir)
        self._server: Any = None

    def warm_up(self) -> None:
        if self._server is not None:
            return
        with self._load_lock:
            if self._server is not None:
                return
            try:
                import xllamacpp
            except ImportError as exc:  # a broken install: the wheel is a dependency
                raise LLMUnavailableError("The llamacpp backend needs the xllamacpp package") from exc
            t0 = time.perf_counter()
            try:
                path = gguf_model_path(self.settings, self.cache_dir)
                params = xllamacpp.CommonParams()
                params.model.path = str(path)
                params.n_ctx = self.settings.context_window
                params.n_parallel = 1
                params.warmup = False
                params.verbosity = -1  # llama.cpp logs every request to stderr otherwise
                if self.settings.num_threads:
                    params.cpuparams.n_threads = self.settings.num_threads
                    params.cpuparams_batch.n_threads = self.settings.num_threads
                self._server = xllamacpp.Server(params)
            except (OSError, ValueError, RuntimeError, PackagedModelError) as exc:
                raise LLMUnavailableError(f"llama.cpp could not load {self.settings.model!r}: {exc}") from exc
            self.load_seconds = time.perf_counter() - t0
            logger.info("Loaded LLM %s in %.1f s", self.name, self.load_seconds)

    def _request(self, messages: list[ChatMessage], **fields: Any) -> dict[str, Any]:
        temperature = self.settings.temperature
        return {
            "messages": plain_messages(messages),
            "temperature": max(temperature, 0.0),  # 0: greedy
            "cache_prompt": True,
            **fields,
        }

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
        request = self._request(
            messages,
            stream=True,
            max_tokens=max_new_tokens or self.settings.max_new_tokens,
            stop=[s for s in (stop or []) if s],
        )

        def produce(emit: Emit, cancelled: threading.Event) -> None:
            failure: list[Exception] = []

            def on_chunk(chunk: Any) -> bool:
                if isinstance(chunk, dict) and "error" in chunk:
                    failure.append(LLMUnavailableError(f"llama.cpp: {_error_text(chunk)}"))
                    return True
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                content = (choices[0].get("delta") or {}).get("content") if choices else None
                if content:
                    emit(content)
                return cancelled.is_set()  # True cancels the generation

            with self._gen_lock:
                result = self._server.handle_chat_completions(request, on_chunk)
            if failure:
                raise failure[0]
            if isinstance(result, dict) and "error" in result:
                raise LLMUnavailableError(f"llama.cpp: {_error_text(result)}")

        return stream_from_worker(produce, label="llama.cpp")

    def choice_probabilities(self, messages: list[ChatMessage], options: Sequence[str]) -> dict[str, float] | None:
        self.warm_up()
        request = self._request(messages, max_tokens=1, logprobs=True, top_logprobs=_TOP_LOGPROBS, temperature=0.0)
        try:
            with self._gen_lock:
                result = self._server.handle_chat_completions(request)
        except Exception as exc:
            raise LLMUnavailableError(f"llama.cpp failed: {exc}") from exc
        if not isinstance(result, dict) or "error" in result:
            raise LLMUnavailableError(f"llama.cpp: {_error_text(result)}")
        try:
            top = result["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            return None
        return option_probabilities({t["token"]: math.exp(t["logprob"]) for t in top}, options)


def _error_text(result: Any) -> str:
    error = result.get("error") if isinstance(result, dict) else result
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
