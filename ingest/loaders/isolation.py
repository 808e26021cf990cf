"""``DocumentLoader``: ``load_bytes`` with the configured limits and a per-file parse time budget.

A parser stuck on a hostile file (a PDF whose content streams loop, a pathological nesting) cannot
be stopped from another thread, so with a budget (``loaders.parse_timeout_s`` > 0) every file is
parsed in a child process that is killed when the budget runs out. The child is long-lived and
shared by every loader in the process: started (a fresh interpreter, ~1 s of imports) on first
use, reused for each file, and replaced only after it was killed or died. Measured on samples/
(BENCHMARKS.md, "Parse isolation"): 1-2 ms per file over in-process parsing, about 0.1% of the time
embedding the same files takes, so all formats go through it rather than only "risky" ones above
some size.

The wire format is JSON over a socket pair (``send_bytes``/``recv_bytes``), never pickle: the parent
does not unpickle anything a process parsing untrusted files sends back. The child also caps its own
address space (``loaders.parse_memory_mb``), so a decompression bomb ends as a MemoryError there,
reported as a refusal, instead of as the OOM killer choosing a victim among the app's processes.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.loaders import load_bytes
from ingest.loaders.detect import LoadError
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

_FILE_TYPES = frozenset({"pdf", "docx", "xlsx", "csv", "pptx", "email", "image", "markdown", "html", "text"})
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding ``ingest``
_MAX_FORWARDED_LOGS = 50  # log records of one parse re-emitted in the parent (a broken PDF logs per page)


class DocumentLoader:
    """Callable ``(data, name) -> LoadedDocument`` honouring ``settings``; raises LoadError only."""

    def __init__(self, settings: LoaderSettings | None = None) -> None:
        self.settings = settings or LoaderSettings()

    def __call__(self, data: bytes, name: str) -> LoadedDocument:
        if self.settings.parse_timeout_s <= 0:
            try:
                return load_bytes(data, name, self.settings)
            except MemoryError as exc:
                raise LoadError("not enough memory to parse this file") from exc
        return _shared_worker().parse(data, name, self.settings)


# --- parent side ---------------------------------------------------------------------------------------


class _ParseWorker:
    """One child process parsing one file at a time; callers queue on a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def parse(self, data: bytes, name: str, settings: LoaderSettings) -> LoadedDocument:
        header = json.dumps({"name": name, "settings": settings.model_dump()}).encode("utf-8", "surrogatepass")
        with self._lock:
            conn = self._send(header, data)
            # The budget counts from the moment the child has the whole file, not the wait for the lock.
            if not conn.poll(settings.parse_timeout_s):
                self._stop()
                raise LoadError(
                    f"parsing took longer than the {settings.parse_timeout_s:g} s budget per file and was "
                    "abandoned (loaders.parse_timeout_s)"
                )
            try:
                raw = conn.recv_bytes()
            except (EOFError, OSError) as exc:
                code = self._stop()
                raise LoadError(f"the parser process died on this file ({_describe_exit(code)})") from exc
            reply = json.loads(raw.decode("utf-8", "surrogatepass"))
            if reply.get("restart"):
                self._stop()  # after a MemoryError the child's heap is not worth trusting
        for record in reply.get("logs", [])[:_MAX_FORWARDED_LOGS]:
            logging.getLogger(str(record[1])).log(int(record[0]), "%s", record[2])
        if "error" in reply:
            raise LoadError(str(reply["error"]))
        return _document(reply["doc"], data, name)

    def _send(self, header: bytes, data: bytes) -> Connection:
        for attempt in (1, 2):
            conn = self._ensure_started()
            try:
                conn.send_bytes(header)
                conn.send_bytes(data)
                return conn
            except OSError as exc:  # BrokenPipeError: the child died since the last file
                code = self._stop()
                if attempt == 2:
                    raise LoadError(f"the parser process could not be started ({_describe_exit(code)})") from exc
                logger.warning("document parser process gone (%s); starting a new one", _describe_exit(code))
        raise AssertionError("unreachable")

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._stop()
        # A fresh interpreter, not multiprocessing: fork would copy the app's threads' locks
        # mid-flight (Milvus, Gradio, the ingest worker), and spawn/forkserver re-run the main
        # script (fatal for `python -c`/stdin, and for scripts without a __main__ guard).
        # Costs ~1 s of imports once per process lifetime.
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH", "")]))
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", f"from ingest.loaders.isolation import serve; serve({child_sock.fileno()})"],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            child_sock.close()
        self._process, self._conn = process, Connection(parent_sock.detach())
        logger.info("document parser process started (pid %s)", process.pid)
        return self._conn

    def _stop(self) -> int | None:
        """Kill the child (if any) and forget it; returns its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # an idle child sees EOF and exits by itself
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        with self._lock:
            self._stop()


_worker: _ParseWorker | None = None
_worker_lock = threading.Lock()


def _shared_worker() -> _ParseWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _ParseWorker()
            atexit.register(_worker.close)
        return _worker


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", out of memory?" if -code == signal.SIGKILL else "")
    return f"exit code {code}"


def _document(payload: dict[str, Any], data: bytes, name: str) -> LoadedDocument:
    """A LoadedDocument from the child's JSON. Identity (source, doc_id) comes from the parent."""
    file_type = str(payload["file_type"])
    if file_type not in _FILE_TYPES:
        raise LoadError(f"the parser process returned an unknown file type {file_type!r}")
    sections = tuple(
        Section(
            text=str(s["text"]),
            page=int(s["page"]) if s.get("page") is not None else None,
            heading_path=tuple(str(h) for h in s.get("heading_path", ())),
            row_numbers=tuple(int(r) for r in s.get("row_numbers", ())),
        )
        for s in payload["sections"]
    )
    encoding = payload.get("encoding")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type=file_type,
        sections=sections,
        title=str(payload.get("title", "")),
        encoding=str(encoding) if encoding is not None else None,
        notes=tuple(str(n) for n in payload.get("notes", ())),
    )


# --- child side ----------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    """Keeps the loaders' log records of one parse to send them back with the reply."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < _MAX_FORWARDED_LOGS:
            self.records.append((record.levelno, record.name, record.getMessage()))


def _set_memory_cap(mb: int) -> None:
    try:
        import resource
    except ImportError:  # not on Windows
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = mb * 1024 * 1024 if mb > 0 else hard
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    # Refused (a hard limit lower than asked): parse with the limit the process has.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _out_of_memory(settings: LoaderSettings) -> dict[str, Any]:
    return {
        "error": f"refused: parsing needs more than the {settings.parse_memory_mb} MB memory cap "
        "(loaders.parse_memory_mb); a decompression bomb?",
        "restart": True,
    }


def serve(fd: int) -> None:
    """The child's loop: one (header, data) request in, one JSON reply out, until the socket closes."""
    conn = Connection(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    root.setLevel(logging.INFO)
    while True:
        try:
            header = json.loads(conn.recv_bytes().decode("utf-8", "surrogatepass"))
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed the socket or died
        settings = LoaderSettings(**header["settings"])
        collect.records = []
        _set_memory_cap(settings.parse_memory_mb)
        try:
            payload = _parse_to_json(data, str(header["name"]), settings, collect)
        except MemoryError:
            payload = json.dumps(_out_of_memory(settings)).encode()
        finally:
            del data
            _set_memory_cap(0)
        try:
            conn.send_bytes(payload)
        except OSError:
            return
        del payload


def _parse_to_json(data: bytes, name: str, settings: LoaderSettings, collect: _Collect) -> bytes:
    reply: dict[str, Any]
    try:
        doc = load_bytes(data, name, settings)
        reply = {
            "doc": {
                "file_type": doc.file_type,
                "title": doc.title,
                "encoding": doc.encoding,
                "notes": list(doc.notes),
                "sections": [
                    {
                        "text": s.text,
                        "page": s.page,
                        "heading_path": list(s.heading_path),
                        "row_numbers": list(s.row_numbers),
                    }
                    for s in doc.sections
                ],
            }
        }
    except LoadError as exc:
        reply = {"error": exc.reason}
    except MemoryError:
        reply = _out_of_memory(settings)
    except Exception as exc:  # load_bytes wraps parser errors; anything else is still one file's problem
        reply = {"error": f"could not read the document: {type(exc).__name__}: {exc}"[:300]}
    reply["logs"] = collect.records
    return json.dumps(reply, ensure_ascii=False).encode("utf-8", "surrogatepass")
