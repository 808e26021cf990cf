"""Milvus Lite 2.5.1 served over TCP: the same engine as the embedded default (full-text search
included), reachable by several processes at ``http://127.0.0.1:<port>`` the way replicas reach a
Milvus server. ``milvus_lite.server.Server`` runs the bundled ``milvus`` binary on a gRPC address."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.app_process import free_port


@contextlib.contextmanager
def milvus_lite_server(folder: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``folder/milvus.db``; yields the URI once it answers."""
    from milvus_lite.server import Server
    from pymilvus import MilvusClient

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Server(str(folder / "milvus.db"), address=f"127.0.0.1:{port}")
    if not server.init() or not server.start():
        raise RuntimeError("Milvus Lite did not start as a server")
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                MilvusClient(uri=uri, timeout=2).close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield uri
    finally:
        server.stop()
