"""The in-process transformers backend on CPU (the default local LLM).

It runs one generation at a time per model (a lock queues concurrent requests): a CPU model
decoding two streams at once is no faster overall and doubles memory for the KV caches.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import ChatMessage, LLMBackend, LLMUnavailableError, apply_stop, plain_messages
from .local_models import model_label, resolve_cache_dir
from .packaged_qwen import (
    PACKAGED_PREFIX,
    PackagedModelError,
    build_hf_model_dir,
    ensure_packaged_hf_dir,
    packaged_model,
)
from .settings import LLMSettings

logger = logging.getLogger(__name__)


def resolve_hf_model(model: str, cache_dir: Path) -> str:
    """A loadable ``from_pretrained`` argument for ``model`` (building cached conversions as needed).

    ``packaged:<name>`` -> the converted packaged folder; ``*.gguf`` file -> converted once into
    ``cache_dir``; a folder or hub id -> returned unchanged.
    """
    if model.startswith(PACKAGED_PREFIX):
        return str(ensure_packaged_hf_dir(cache_dir, packaged_model(model)))
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        st = path.stat()
        # Keyed by absolute path + size + mtime: cheap (no hash of a multi-GB file), changes on replacement.
        key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
        return str(build_hf_model_dir(Path(cache_dir) / f"{path.stem}-{key}-hf", path))
    return model


class TransformersLLM(LLMBackend):
    """A causal LM through transformers, fp32 on CPU (bf16 has no fast path on most CPUs: ~5x slower).

    Streams with :class:`transformers.TextIteratorStreamer` while ``generate`` runs in a background
    thread. ``torch.set_num_threads`` (when ``num_threads`` is set) is process-wide.
    """

    def __init__(self, settings: LLMSettings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = resolve_cache_dir(settings, cache_dir)
        self._model: Any = None
        self._tokenizer: Any = None
        self._model_context: int | None = None
        self._load_lock = threading.Lock()
        self._gen_lock = threading.Lock()  # one generate() on the model at a time; others queue here
        self._tok_lock = threading.Lock()  # the Rust tokenizer is not re-entrant for encode + state changes
        self.load_seconds: float | None = None

    @property
    def name(self) -> str:
        return "local:" + model_label(self.settings.model)

    @property
    def context_window(self) -> int:
        return min(self.settings.context_window, self._model_context or self.settings.context_window)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.settings.num_threads:
                torch.set_num_threads(self.settings.num_threads)
            t0 = time.perf_counter()
            try:
                source = resolve_hf_model(self.settings.model, self.cache_dir)
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            except (OSError, PackagedModelError) as exc:
                raise LLMUnavailableError(f"Local model {self.settings.model!r} could not be loaded: {exc}") from exc
            model = model.eval()  # loaded on the CPU already (no device map)
            if not getattr(tokenizer, "chat_template", None):
                raise LLMUnavailableError(
                    f"Local model {self.settings.model!r} has no chat template; use an instruct/chat model"
                )
            self._model_context = getattr(model.config, "max_position_embeddings", None)
            self._tokenizer = tokenizer
            self._model = model  # set last: it is the "loaded" flag
            self.load_seconds = time.perf_counter() - t0
            logger.info("Loaded LLM %s from %s in %.1f s", self.name, source, self.load_seconds)

    # -- tokens -------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        with self._tok_lock:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_text(self, messages: list[ChatMessage]) -> str:
        return self._tokenizer.apply_chat_template(
            plain_messages(messages),
            add_generation_prompt=True,
            tokenize=False,
        )

    def count_messages_tokens(self, messages: list[ChatMessage]) -> int:
        self.warm_up()
        with self._tok_lock:
            text = self._prompt_text(messages)
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ---------------------------------------------------------------------------------

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        # A stop string found by apply_stop closes _raw_stream, which cancels generate() at the next token.
        return apply_stop(self._raw_stream(messages, max_new_tokens or self.settings.max_new_tokens), stop)

    def _raw_stream(self, messages: list[ChatMessage], max_new_tokens: int) -> Iterator[str]:
        self.warm_up()
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        tok, model = self._tokenizer, self._model
        with self._tok_lock:
            inputs = tok(self._prompt_text(messages), return_tensors="pt", add_special_tokens=False)
        prompt_len = int(inputs["input_ids"].shape[1])
        room = self.context_window - prompt_len
        if room <= 0:
            raise ValueError(f"Prompt of {prompt_len} tokens does not fit the context window ({self.context_window})")
        if max_new_tokens > room:
            logger.warning("Answer limited to %d tokens by the context window (%d)", room, self.context_window)
            max_new_tokens = room

        gen_cfg = copy.deepcopy(model.generation_config)
        gen_cfg.max_new_tokens = max_new_tokens
        if self.settings.temperature <= 0.0:
            # Greedy. The sampling knobs are set to their neutral values (None would be refilled from
            # the model's generation_config) so transformers does not warn that they are ignored.
            gen_cfg.do_sample = False
            gen_cfg.temperature = 1.0
            gen_cfg.top_p = 1.0
            gen_cfg.top_k = 50
        else:
            gen_cfg.do_sample = True
            gen_cfg.temperature = self.settings.temperature
        if gen_cfg.pad_token_id is None:
            gen_cfg.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

        cancel = threading.Event()
        steps = [0]

        class _Cancel(StoppingCriteria):
            # Called once per generated token: the cheap hook to count tokens and to abort when the
            # consumer went away (closed stream, stop string, client disconnect).
            def __call__(
                self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
            ) -> torch.BoolTensor:
                steps[0] += 1
                done = torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)
                return done  # type: ignore[return-value]  # a bool tensor; torch's stubs type it Tensor

        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def _run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(
                        **inputs,
                        generation_config=gen_cfg,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_Cancel()]),
                    )
            except BaseException as exc:  # surfaced in the consumer thread below
                errors.append(exc)
                streamer.end()  # unblock the consumer, which would otherwise wait forever

        with self._gen_lock:
            t0 = time.perf_counter()
            first: float | None = None
            worker = threading.Thread(target=_run, name="llm-generate", daemon=True)
            worker.start()
            try:
                for text in streamer:
                    if errors:
                        break
                    if text:
                        if first is None:
                            first = time.perf_counter() - t0
                        yield text
            finally:
                cancel.set()
                worker.join()
            if errors:
                raise LLMUnavailableError(
                    f"Local model {self.name} failed while generating: {errors[0]!r}"
                ) from errors[0]
            total = time.perf_counter() - t0
            decode = total - (first or 0.0)
            logger.info(
                "LLM %s: %d prompt tokens, %d new tokens, first text after %.2f s, %.1f tok/s decode",
                self.name,
                prompt_len,
                steps[0],
                first or total,
                (steps[0] - 1) / decode if steps[0] > 1 and decode > 0 else 0.0,
            )
