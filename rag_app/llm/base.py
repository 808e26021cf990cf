"""The backend-neutral LLM interface: chat messages in, streamed text deltas out."""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal, TypedDict


class ChatMessage(TypedDict):
    """One chat turn. A plain dict, so it goes as is into chat templates and OpenAI payloads."""

    role: Literal["system", "user", "assistant"]
    content: str


def plain_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """Fresh ``{"role", "content"}`` dicts (extra keys dropped) for chat templates and request payloads."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


class LLMUnavailableError(Exception):
    """The LLM cannot answer now: endpoint unreachable, timed out, HTTP error, or model not loadable.

    The message names the endpoint or model, never the API key.
    """


class LLMBackend(ABC):
    """Haystack-style component: construct cheaply, ``warm_up()`` loads, ``stream()`` answers.

    ``stream()`` warms up lazily when needed, so ``warm_up()`` is only to move the load time (e.g. to
    startup). Implementations must be safe to call from several threads.
    """

    @property
    @abstractmethod
    def name(self) -> str:
        """A short label for logs and the UI, e.g. ``local:qwen2.5-coder-0.5b-instruct``."""

    @property
    def context_window(self) -> int:
        """Prompt + answer tokens the model accepts (for context budgeting)."""
        return 32768

    def warm_up(self) -> None:  # noqa: B027 - a no-op is a valid default (remote backends)
        """Load models / open connections. Idempotent."""

    @abstractmethod
    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the answer as text deltas (in order; joined they form the answer).

        Generation ends at the token limit, the end of turn, or before the first ``stop`` string
        (which is not yielded). Closing the iterator early cancels the generation.
        Raises :class:`LLMUnavailableError` when the backend cannot answer.
        """

    def stream_scored(
        self,
        messages: list[ChatMessage],
        token_probs: list[tuple[str, float]],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """:meth:`stream`, and where the backend reads token probabilities, each generated token's
        text (as streamed) and the probability the model gave it, appended to ``token_probs`` in
        order (tokens after a stop string included). Others append nothing."""
        return self.stream(messages, max_new_tokens=max_new_tokens, stop=stop)

    def generate(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """The whole answer at once (the joined stream)."""
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens, stop=stop))

    def choice_probabilities(self, messages: list[ChatMessage], options: Sequence[str]) -> dict[str, float] | None:
        """The probability of each option (e.g. "是" / "否") as the first token of the reply, read from
        one prompt pass without generating; None where the backend cannot read token probabilities.

        Backends that cache a prompt prefix make this nearly free before an answer to the same
        sources (only the differing last turn is read)."""
        return None

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer (or an estimate where it is not available)."""

    def count_messages_tokens(self, messages: list[ChatMessage]) -> int:
        """Prompt tokens of a chat (contents + a per-message allowance for the template's markers)."""
        # ChatML-style templates add ~4 tokens per turn (<|im_start|>role\n ... <|im_end|>\n) + the
        # generation prompt; backends with a real tokenizer override this with the exact count.
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 3


# CJK ideographs, kana, hangul and CJK punctuation/full-width forms: ~1 token per character.
_CJK_RE = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"
)
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_SYMBOL_RE = re.compile(r"[^\w\s]|_", re.UNICODE)


def approx_token_count(text: str) -> int:
    """Tokenizer-free estimate for BPE models (Qwen, Llama, GPT): deliberately a slight over-estimate.

    1 token per CJK character, 1.3 per other word (sub-word splits of long/rare words, numbers),
    1 per punctuation/symbol character. Good to ~±20 % for prose in Chinese or English, which is all
    context budgeting needs; use a backend with a real tokenizer when exact counts matter.
    """
    if not text:
        return 0
    cjk = len(_CJK_RE.findall(text))
    rest = _CJK_RE.sub(" ", text)
    words = len(_WORD_RE.findall(rest))
    symbols = len(_SYMBOL_RE.findall(rest))
    return cjk + symbols + math.ceil(words * 1.3)


def apply_stop(deltas: Iterable[str], stop: list[str] | None) -> Iterator[str]:
    """Pass ``deltas`` through, cut before the first occurrence of any ``stop`` string.

    A stop string may span deltas, so text that could be the start of one is held back until it is
    decided. When a stop string is hit, the source iterator is closed (which cancels generation).
    """
    stops = [s for s in (stop or []) if s]
    if not stops:
        yield from deltas
        return
    it = iter(deltas)
    buf = ""
    try:
        for delta in it:
            buf += delta
            hits = [i for i in (buf.find(s) for s in stops) if i >= 0]
            if hits:
                if head := buf[: min(hits)]:
                    yield head
                return
            hold = _partial_stop_suffix(buf, stops)
            if len(buf) > hold:
                yield buf[: len(buf) - hold]
                buf = buf[len(buf) - hold :]
        if buf:
            yield buf
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _partial_stop_suffix(buf: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of some stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(buf)), best, -1):
            if buf.endswith(s[:n]):
                best = n
                break
    return best
