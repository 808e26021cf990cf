"""A tiny OpenAI-compatible ``/v1/chat/completions`` server (SSE streaming) on 127.0.0.1, for tests.

It records every request and answers with scripted deltas, so tests can assert what the app sent
to the LLM (or that it sent nothing) without any model. ``responder(body) -> list[str]`` picks the
deltas per request (e.g. a rewrite vs an answer); ``delay_s`` spaces them to make streaming visible.
The stream carries what real servers send around the deltas (a keep-alive comment, a role-only first
event, ids, a trailing usage-only event). For error paths: ``status`` (an HTTP error for every request),
``error_after`` (an in-stream error event after that many deltas) and ``gate`` (hold the rest of the
stream after the first delta until the test sets it).

    with StubLLMServer(deltas=["It is ", "18 days ", "[1]."]) as stub:
        settings = LLMSettings(backend="openai", base_url=stub.base_url)

Run by hand for a demo: ``python tests/support/stub_llm_server.py --port 8000``.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_DELTAS = ["According to ", "the documents, ", "this is covered ", "in [1]."]

Responder = Callable[[dict[str, Any]], list[str]]


def is_rewrite_request(body: dict[str, Any]) -> bool:
    """True for the answerer's follow-up rewriting call (its system prompt asks for a standalone question)."""
    messages = body.get("messages") or []
    return bool(messages) and "standalone question" in str(messages[0].get("content", "")).lower()


def answer_from_samples(body: dict[str, Any]) -> list[str]:
    """A responder for questions about samples/: the annual-leave answer of the Chinese handbook or
    the upload limit of the English release notes, citing [1]; a follow-up rewrite returns the
    follow-up as it was asked."""
    user = str(body["messages"][-1]["content"])
    if is_rewrite_request(body):
        return [user.split("Follow-up question:", 1)[1].split("\n")[0].strip()]
    if "年假" in user:
        return ["入职满五年的正式员工", "每年享有 18 天带薪年假 [1]。"]
    return ["Since version 3.2, ", "the maximum upload size ", "is 200 MB per file [1]."]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that stops reading early (stop string, closed stream) resets the connection: expected.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class StubLLMServer:
    def __init__(
        self,
        deltas: list[str] | None = None,
        *,
        responder: Responder | None = None,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.deltas = list(deltas or DEFAULT_DELTAS)
        self.responder = responder
        self.delay_s = delay_s
        self.status = 200  # set >= 400 to answer every request with an HTTP error
        self.error_after: int | None = None  # send an in-stream error event after this many deltas, then stop
        self.gate: threading.Event | None = None  # when set: wait (<= 5 s) for it after the first delta
        self.gate_timed_out = False
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"}
        self._lock = threading.Lock()
        self._server = _QuietServer((host, port), self._handler())
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StubLLMServer:
        # A short poll interval: stop() returns in ~50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection --------------------------------------------------------------------------------
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests]

    def answer_bodies(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if not is_rewrite_request(b)]

    def rewrite_bodies(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if is_rewrite_request(b)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- HTTP -------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                if stub.status != 200:
                    payload = json.dumps({"error": {"message": "model overloaded"}}).encode()
                    self.send_response(stub.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                deltas = stub.responder(body) if stub.responder else stub.deltas
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes

                def send(obj: object) -> None:
                    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()

                self.wfile.write(b": keep-alive comment\n\n")
                send({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})  # role-only first event
                for i, delta in enumerate(deltas, 1):
                    if stub.delay_s:
                        time.sleep(stub.delay_s)
                    send({"id": "x", "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]})
                    if i == 1 and stub.gate is not None:
                        stub.gate_timed_out = not stub.gate.wait(5)
                    if i == stub.error_after:
                        send({"error": {"message": "upstream failure", "code": 500}})
                        return
                send({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                send({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(deltas)}})  # usage-only
                send("[DONE]")

        return Handler


if __name__ == "__main__":  # pragma: no cover - manual demo helper
    import argparse

    parser = argparse.ArgumentParser(description="Stub OpenAI-compatible LLM that cites [1].")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.15)
    args = parser.parse_args()
    server = StubLLMServer(delay_s=args.delay, port=args.port).start()
    sys.stderr.write(f"stub LLM at {server.base_url}\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
