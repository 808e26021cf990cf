"""Any OpenAI-compatible chat server (vLLM, Ollama, DashScope, DeepSeek, OpenAI) over streamed SSE."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import httpx

from .base import ChatMessage, LLMBackend, LLMUnavailableError, apply_stop, approx_token_count, plain_messages
from .settings import LLMSettings

logger = logging.getLogger(__name__)

_MAX_REMOTE_STOPS = 4  # OpenAI's limit; the rest are still honoured client-side by apply_stop


class OpenAICompatibleLLM(LLMBackend):
    """POST ``{base_url}/chat/completions`` with ``stream: true`` and yield ``choices[0].delta.content``.

    ``count_tokens`` is an estimate (:func:`rag_app.llm.base.approx_token_count`): the server's
    tokenizer is unknown here.
    """

    def __init__(self, settings: LLMSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._transport = transport  # injectable for tests / custom proxies
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"openai:{self.settings.openai_model}"

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    @property
    def endpoint(self) -> str:
        return self._url

    def warm_up(self) -> None:
        # Only builds the pooled client (thread-safe, reused): no request, so a server that starts
        # after the app is fine; errors surface on the first question instead.
        with self._lock:
            if self._client is None:
                t = self.settings.timeout_s
                self._client = httpx.Client(
                    # Short connect timeout: an unreachable endpoint must fail fast, not after timeout_s.
                    timeout=httpx.Timeout(t, connect=min(t, 10.0)),
                    transport=self._transport,
                    # Env proxies are honoured for remote APIs, but a corporate HTTP(S)_PROXY must not
                    # swallow a request to a loopback vLLM/Ollama.
                    trust_env=not _is_loopback(self._url),
                )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        key = self.settings.get_api_key()
        if key:  # Ollama / local vLLM need none; sending an empty "Bearer " upsets some proxies
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def stream(
        self,
        messages: list[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        return apply_stop(self._raw_stream(messages, max_new_tokens=max_new_tokens, stop=stop), stop)

    def _raw_stream(
        self, messages: list[ChatMessage], *, max_new_tokens: int | None, stop: list[str] | None
    ) -> Iterator[str]:
        self.warm_up()
        assert self._client is not None
        payload: dict = {
            "model": self.settings.openai_model,
            "messages": plain_messages(messages),
            "stream": True,
            "temperature": max(self.settings.temperature, 0.0),
            "max_tokens": max_new_tokens or self.settings.max_new_tokens,
        }
        if stop:
            payload["stop"] = [s for s in stop if s][:_MAX_REMOTE_STOPS]
        where = f"{self._url} (model {self.settings.openai_model})"
        try:
            with self._client.stream("POST", self._url, json=payload, headers=self._headers()) as resp:
                if resp.status_code >= 400:
                    body = resp.read().decode("utf-8", "replace").strip()
                    raise LLMUnavailableError(
                        f"LLM endpoint {where} returned HTTP {resp.status_code}: {body[:500]}"
                    )
                yield from _iter_sse_deltas(resp.iter_lines(), where)
        except httpx.TimeoutException as exc:
            raise LLMUnavailableError(
                f"LLM endpoint {where} timed out after {self.settings.timeout_s:g} s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:  # connect refused, DNS, protocol errors mid-stream
            raise LLMUnavailableError(f"LLM endpoint {where} is unavailable: {type(exc).__name__}: {exc}") from exc

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _iter_sse_deltas(lines: Iterator[str], where: str) -> Iterator[str]:
    """Parse an OpenAI SSE stream: ``data: {json}`` events until ``data: [DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        data = line[5:].strip()
        if not data:
            continue
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            logger.warning("Ignoring a malformed SSE event from %s: %.200s", where, data)
            continue
        if event.get("error"):
            # Some servers (vLLM, DashScope) report failures inside a 200 stream.
            raise LLMUnavailableError(f"LLM endpoint {where} reported an error: {str(event['error'])[:500]}")
        choices = event.get("choices") or []  # empty in a trailing usage-only event
        if not choices:
            continue
        content = (choices[0].get("delta") or {}).get("content")
        if content:
            yield content
