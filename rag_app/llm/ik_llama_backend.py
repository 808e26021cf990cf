"""The ik_llama.cpp backend: the GGUF run in process through ik_llama.cpp (the prebuilt
``ik-llama-cpp-python`` wheel; no source build).

Why a second llama.cpp: on 2 CPU cores ik_llama.cpp reads a prompt about twice as fast as mainline
llama.cpp (``xllamacpp``) on the same Q4_K_M file (BENCHMARKS.md, "LLM runtime"), which is most of
the wait for the first token. The speed comes from its matrix kernels, from re-packing the weights
into row-interleaved blocks in memory while loading (the file is used as it is; it pays most on the
1.5B model) and from its flash attention.

The wheel's own high-level class samples in a Python loop over the whole vocabulary (~20 ms a
token) and reads every prompt from the start; only its ctypes bindings of ``llama.h`` are used here,
and this module adds what the answerer needs: the model's chat template, reuse of the previous
prompt's cached prefix (the rules and, between the answer check and the answer, the quoted sources),
numpy sampling, streaming with cancellation between tokens, and the first token's probabilities.
"""
from __future__ import annotations

import codecs
import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import ChatMessage, LLMUnavailableError, apply_stop, plain_messages
from .gguf_backend import GgufBackend, gguf_model_path, option_probabilities
from .packaged_qwen import PackagedModelError
from .settings import LLMSettings
from .worker_stream import Emit, stream_from_worker

logger = logging.getLogger(__name__)

_BATCH = 512  # prompt tokens per decode call (llama.cpp's default micro-batch)
_TOP_PROBS = 20  # alternatives of the first token read to find the options of a verdict
# llama.cpp's default sampler settings, so answers match the other llama.cpp backend's in kind.
_TOP_K, _TOP_P, _MIN_P = 40, 0.95, 0.05
_SEED = 0  # a fixed seed per request: the same prompt gets the same answer


_LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_GGML_ERROR = 4  # ggml_log_level


@_LogCallback
def _log_to_logging(level: int, text: bytes | None, _user_data: Any) -> None:
    # llama.cpp writes a hundred lines per model load to stderr otherwise. Its warnings on a CPU are
    # about GPU memory it does not use and vocabulary fix-ups it makes itself: debug, like the rest.
    message = (text or b"").decode("utf-8", errors="replace").rstrip()
    if message and message.strip("."):
        logger.log(logging.ERROR if level == _GGML_ERROR else logging.DEBUG, "ik_llama: %s", message)


def _bindings() -> Any:
    """The wheel's ctypes module, with the few functions of ``llama.h`` it does not declare, and its
    log routed to :mod:`logging`."""
    try:
        from ik_llama_cpp import _ctypes_api as C
    except (ImportError, OSError) as exc:  # a broken install: the wheel is a dependency
        raise LLMUnavailableError(f"The ik_llama backend needs the ik-llama-cpp-python package: {exc}") from exc
    lib = C._lib
    for name, argtypes, restype in (
        ("llama_kv_cache_seq_rm", [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32], ctypes.c_bool),
        ("llama_model_chat_template", [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_char_p),
        ("llama_chat_apply_template",
         [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_char_p, ctypes.c_int32],
         ctypes.c_int32),
        ("llama_n_vocab", [ctypes.c_void_p], ctypes.c_int32),
        ("llama_log_set", [_LogCallback, ctypes.c_void_p], None),
    ):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    lib.llama_log_set(_log_to_logging, None)
    return C


class _ChatMessageStruct(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class IkLlamaLLM(GgufBackend):
    """ik_llama.cpp on the GGUF as it is: one context, one request at a time, the last prompt's
    tokens kept in the KV cache for the next request that starts the same way."""

    label = "ik_llama"

    def __init__(
        self, settings: LLMSettings, cache_dir: Path | None = None, *, repack: bool = True, flash_attention: bool = True
    ) -> None:
        super().__init__(settings, cache_dir)
        # Switchable only to measure what each brings (benchmarks/bench_llm_prefill.py).
        self.repack, self.flash_attention = repack, flash_attention
        self._c: Any = None
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._template: bytes | None = None
        self._n_vocab = 0
        self._cached: list[int] = []  # the tokens whose keys and values the context holds, in order
        self.last_prompt_reused = 0  # tokens of the last prompt taken from the cache, not read again

    def warm_up(self) -> None:
        if self._ctx is not None:
            return
        with self._load_lock:
            if self._ctx is not None:
                return
            C = _bindings()
            t0 = time.perf_counter()
            try:
                path = gguf_model_path(self.settings, self.cache_dir)
            except PackagedModelError as exc:
                raise LLMUnavailableError(f"ik_llama could not load {self.settings.model!r}: {exc}") from exc
            C.llama_backend_init()
            model_params = C.llama_model_default_params()
            model_params.repack_tensors = self.repack  # row-interleaved copies in memory (the file is untouched)
            model = C.llama_model_load_from_file(str(path).encode(), model_params)
            if not model:
                raise LLMUnavailableError(f"ik_llama could not load {self.settings.model!r} ({path.name})")
            threads = self.settings.num_threads or os.cpu_count() or 1
            ctx_params = C.llama_context_default_params()
            ctx_params.n_ctx = self.settings.context_window
            ctx_params.n_batch = ctx_params.n_ubatch = _BATCH
            ctx_params.n_seq_max = 1
            ctx_params.n_threads = ctx_params.n_threads_batch = threads
            ctx_params.flash_attn = self.flash_attention
            ctx = C.llama_init_from_model(model, ctx_params)
            if not ctx:
                C.llama_free_model(model)
                raise LLMUnavailableError(
                    f"ik_llama could not make a {self.settings.context_window}-token context for {path.name}")
            self._c, self._model, self._ctx = C, model, ctx
            self._template = C._lib.llama_model_chat_template(model, None)
            self._n_vocab = C._lib.llama_n_vocab(model)
            self._batch = C.llama_batch_init(_BATCH, 0, 1)
            self.load_seconds = time.perf_counter() - t0
            logger.info("Loaded LLM %s in %.1f s (%d threads)", self.name, self.load_seconds, threads)

    # -- prompt ---------------------------------------------------------------------------------

    def _render(self, messages: list[ChatMessage]) -> bytes:
        """The chat as the model's own template writes it, ending with the assistant's turn opened."""
        plain = plain_messages(messages)
        chat = (_ChatMessageStruct * len(plain))(
            *[_ChatMessageStruct(m["role"].encode(), m["content"].encode()) for m in plain])
        size = sum(len(m["content"].encode()) for m in plain) * 2 + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._c._lib.llama_chat_apply_template(self._template, chat, len(plain), True, buf, size)
            if n < 0:
                raise LLMUnavailableError(f"ik_llama does not know the chat template of {self.settings.model!r}")
            if n <= size:
                return buf.raw[:n]
            size = n + 1
        raise LLMUnavailableError("ik_llama: the chat template kept growing")

    def _tokenize(self, text: bytes) -> list[int]:
        C = self._c
        capacity = len(text) + 16
        tokens = (C.llama_token * capacity)()
        n = C.llama_tokenize(self._model, text, len(text), tokens, capacity, True, True)
        if n < 0:  # cannot happen with a token per byte and a little room; kept for a clear error
            raise LLMUnavailableError(f"ik_llama could not tokenize a {len(text)}-byte prompt")
        return list(tokens[:n])

    def _read_prompt(self, tokens: list[int], cancelled: threading.Event | None = None) -> bool:
        """Bring the context to ``tokens``: keep the common prefix with the last prompt, read the rest.

        False when cancelled between micro-batches (the cache then holds what was read)."""
        C = self._c
        if len(tokens) >= self.settings.context_window:
            raise LLMUnavailableError(
                f"The prompt has {len(tokens)} tokens; the context window is {self.settings.context_window}")
        keep = 0
        for have, want in zip(self._cached, tokens[:-1]):  # at least one token is read, for its logits
            if have != want:
                break
            keep += 1
        C._lib.llama_kv_cache_seq_rm(self._ctx, 0, keep, -1)
        del self._cached[keep:]
        self.last_prompt_reused = keep
        batch = self._batch
        for start in range(keep, len(tokens), _BATCH):
            if cancelled is not None and cancelled.is_set():
                return False
            chunk = tokens[start:start + _BATCH]
            last = start + len(chunk) == len(tokens)
            self._fill(batch, chunk, start, logits_last=last)
            if C.llama_decode(self._ctx, batch) != 0:
                C._lib.llama_kv_cache_seq_rm(self._ctx, 0, len(self._cached), -1)
                raise LLMUnavailableError(f"ik_llama could not read the prompt (tokens {start}-{start + len(chunk)})")
            self._cached.extend(chunk)
        return True

    @staticmethod
    def _fill(batch: Any, tokens: list[int], first_pos: int, *, logits_last: bool) -> None:
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = first_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 0
        if logits_last:
            batch.logits[len(tokens) - 1] = 1

    def _last_logits(self) -> np.ndarray:
        pointer = self._c.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._c.llama_token_to_piece(self._model, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._c.llama_token_to_piece(self._model, token, buf, -n, 0, False)
        return buf.raw[:max(n, 0)]

    # -- generation -----------------------------------------------------------------------------

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        return self._stream(messages, None, max_new_tokens, stop)

    def stream_scored(
        self,
        messages: list[ChatMessage],
        token_probs: list[tuple[str, float]],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        return self._stream(messages, token_probs, max_new_tokens, stop)

    def _stream(
        self, messages: list[ChatMessage], token_probs: list[tuple[str, float]] | None, max_new_tokens: int | None,
        stop: list[str] | None,
    ) -> Iterator[str]:
        self.warm_up()
        limit = max_new_tokens or self.settings.max_new_tokens

        def produce(emit: Emit, cancelled: threading.Event) -> None:
            with self._gen_lock:
                self._generate(self._tokenize(self._render(messages)), limit, emit, cancelled, token_probs)

        return apply_stop(stream_from_worker(produce, label="ik_llama"), stop)

    def _generate(
        self, prompt: list[int], limit: int, emit: Emit, cancelled: threading.Event,
        token_probs: list[tuple[str, float]] | None = None,
    ) -> None:
        C = self._c
        if not self._read_prompt(prompt, cancelled):
            return
        rng = np.random.default_rng(_SEED)
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        batch = self._batch
        for _ in range(limit):
            if cancelled.is_set():
                break
            logits = self._last_logits()
            token = _sample(logits, self.settings.temperature, rng)
            if C.llama_token_is_eog(self._model, token):
                break
            piece = text.decode(self._piece(token))
            if token_probs is not None:
                token_probs.append((piece, float(_softmax(logits)[token])))
            emit(piece)
            if len(self._cached) + 1 >= self.settings.context_window:
                break
            self._fill(batch, [token], len(self._cached), logits_last=True)
            if C.llama_decode(self._ctx, batch) != 0:
                raise LLMUnavailableError("ik_llama failed while writing the answer")
            self._cached.append(token)
        emit(text.decode(b"", final=True))

    def reply_probabilities(self, messages: list[ChatMessage], reply: str) -> list[tuple[str, float]]:
        """Each token of ``reply`` (a given answer, e.g. a saved one) and the probability the model
        gives it after ``messages`` and the tokens before it: what :meth:`stream_scored` would have
        recorded had the model written ``reply``."""
        self.warm_up()
        C = self._c
        with self._gen_lock:
            self._read_prompt(self._tokenize(self._render(messages)))
            tokens = [t for t in self._tokenize(reply.encode()) if self._piece(t)]  # no BOS
            out, text = [], codecs.getincrementaldecoder("utf-8")(errors="replace")
            for token in tokens:
                out.append((text.decode(self._piece(token)), float(_softmax(self._last_logits())[token])))
                self._fill(self._batch, [token], len(self._cached), logits_last=True)
                if C.llama_decode(self._ctx, self._batch) != 0:
                    raise LLMUnavailableError("ik_llama failed while reading a reply")
                self._cached.append(token)
        return out

    def choice_probabilities(self, messages: list[ChatMessage], options: Sequence[str]) -> dict[str, float] | None:
        self.warm_up()
        with self._gen_lock:
            self._read_prompt(self._tokenize(self._render(messages)))
            probs = _softmax(self._last_logits())
            top = np.argpartition(probs, -_TOP_PROBS)[-_TOP_PROBS:]
            pieces = {int(t): self._piece(int(t)).decode("utf-8", errors="replace") for t in top}
        token_probs: dict[str, float] = {}
        for token, piece in pieces.items():
            token_probs[piece] = token_probs.get(piece, 0.0) + float(probs[token])
        return option_probabilities(token_probs, options)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def _sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """llama.cpp's default chain on one step's logits: top-k, top-p, min-p, then temperature.
    Greedy at temperature 0."""
    if temperature <= 0:
        return int(np.argmax(logits))
    top = np.argpartition(logits, -_TOP_K)[-_TOP_K:]
    top = top[np.argsort(logits[top])[::-1]]
    probs = _softmax(logits[top])
    keep = int(np.searchsorted(np.cumsum(probs), _TOP_P)) + 1  # the smallest head holding top_p
    keep = min(keep, int((probs >= _MIN_P * probs[0]).sum()))
    top = top[:max(keep, 1)]
    probs = _softmax(logits[top] / temperature)
    return int(top[rng.choice(len(top), p=probs)])
