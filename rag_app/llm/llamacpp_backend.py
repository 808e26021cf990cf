"""The llama.cpp backend: the GGUF run directly in process through ``xllamacpp`` (a prebuilt wheel).

``xllamacpp`` embeds llama.cpp's own server: requests are OpenAI-style dicts, streamed chunks come
back through a callback (returning True from it cancels the generation). One slot, so a request that
starts like the previous one (the rules and the quoted sources) only reads its new tokens.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import ChatMessage, LLMBackend, LLMUnavailableError, apply_stop, approx_token_count, plain_messages
from .local_models import model_label, resolve_cache_dir
from .packaged_qwen import PACKAGED_PREFIX, PackagedModelError, ensure_packaged_gguf, packaged_model
from .settings import LLMSettings

logger = logging.getLogger(__name__)

_DONE = object()  # end of a stream in the delta queue
# How many alternatives of the first token are read to find the options of a verdict.
_TOP_LOGPROBS = 20


class LlamaCppLLM(LLMBackend):
    """llama.cpp on the GGUF as it is (Q4_K_M): no conversion, no fp32 copy.

    Measured on 2 cores with the packaged 0.5B model (BENCHMARKS.md, "Answer latency"): about 4x the
    prompt reading and decode speed of fp32 transformers, and the model loads in about a second.
    """

    def __init__(self, settings: LLMSettings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = resolve_cache_dir(settings, cache_dir)
        self._server: Any = None
        self._load_lock = threading.Lock()
        # One request at a time: the single slot keeps the last prompt's cache for the next one.
        self._gen_lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def name(self) -> str:
        return "llamacpp:" + model_label(self.settings.model)

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    def _model_path(self) -> Path:
        model = self.settings.model
        if model.startswith(PACKAGED_PREFIX):
            return ensure_packaged_gguf(self.cache_dir, packaged_model(model))
        path = Path(model).expanduser()
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise LLMUnavailableError(f"The llamacpp backend needs a .gguf file, got {model!r}")
        return path

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
                path = self._model_path()
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

    def count_tokens(self, text: str) -> int:
        # The embedded server exposes no tokenizer: a deliberate slight over-estimate (for Qwen's
        # vocabulary about 1.3x on Chinese), which only leaves the context budget a little unused.
        return approx_token_count(text)

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
        deltas: queue.Queue[Any] = queue.Queue()
        cancelled = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            if isinstance(chunk, dict) and "error" in chunk:
                deltas.put(LLMUnavailableError(f"llama.cpp: {_error_text(chunk)}"))
                return True
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            content = (choices[0].get("delta") or {}).get("content") if choices else None
            if content:
                deltas.put(content)
            return cancelled.is_set()  # True cancels the generation

        def generate() -> None:
            try:
                with self._gen_lock:
                    result = self._server.handle_chat_completions(request, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    deltas.put(LLMUnavailableError(f"llama.cpp: {_error_text(result)}"))
            except Exception as exc:  # surfaces in the consumer's thread
                deltas.put(LLMUnavailableError(f"llama.cpp failed: {exc}"))
            finally:
                deltas.put(_DONE)

        worker = threading.Thread(target=generate, name="llamacpp-generate", daemon=True)
        worker.start()
        try:
            while (item := deltas.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            cancelled.set()  # the consumer left early (a stop string, a closed connection)

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


def option_probabilities(token_probs: dict[str, float], options: Sequence[str]) -> dict[str, float]:
    """Each option's probability as the first token: the mass of the tokens that spell it (case and
    surrounding spaces aside; " Yes", "yes" and "YES" are one answer)."""
    wanted = {o.strip().lower(): o for o in options}
    out = dict.fromkeys(options, 0.0)
    for token, p in token_probs.items():
        option = wanted.get(token.strip().lower())
        if option is not None:
            out[option] += p
    return out


def _error_text(result: Any) -> str:
    error = result.get("error") if isinstance(result, dict) else result
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
