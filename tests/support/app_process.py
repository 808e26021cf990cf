"""The real ``rag-app`` in its own process, for tests and benchmarks that drive it over HTTP.

A separate process is what production runs, and it keeps Gradio's process-wide state (upload
progress tracking, locks bound to an event loop) apart from apps that other tests drive in-process
through Starlette's TestClient.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(work: Path, models_dir: Path, stub_url: str, **sections: dict[str, Any]) -> Path:
    """configs/default.yaml with a data directory under ``work``, the converted e5 in
    ``models_dir``, the stub server as LLM, and ``sections`` merged over the rest."""
    config = yaml.safe_load((REPO / "configs" / "default.yaml").read_text(encoding="utf-8"))
    config["data_dir"] = str(work / "data")
    config["log_level"] = "WARNING"
    config.setdefault("embedder", {})["cache_dir"] = str(models_dir)
    config["llm"] = {**config.get("llm", {}), "backend": "openai", "base_url": stub_url, "openai_model": "stub"}
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OPENAI_API_KEY", None)
    return {**env, **(extra or {})}


def rag_ingest(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``rag-ingest --config CONFIG ARGS...`` in its own process (Milvus Lite admits one process per
    database); its output, or RuntimeError with the reason when it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "rag_app.cli.ingest", "--config", str(config), *args],
        cwd=REPO, env=_env(env), capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rag-ingest failed ({proc.returncode}): {proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def ingest(config: Path, paths: list[Path], env: dict[str, str] | None = None) -> str:
    """``rag-ingest`` of these files or folders."""
    return rag_ingest(config, *map(str, paths), env=env)


@contextlib.contextmanager
def running_app(
    config: Path, log_path: Path, env: dict[str, str] | None = None, timeout_s: float = 300.0
) -> Iterator[str]:
    """Start ``rag-app`` on a free loopback port; yield its base URL once /api/health answers;
    stop it with SIGINT (uvicorn's graceful shutdown, then the app closes its stores)."""
    app = Replica(config, log_path, env)
    try:
        yield app.wait_healthy(timeout_s).url
    finally:
        app.stop()


class Replica:
    """A ``rag-app`` process on a free loopback port, and the HTTP calls the tests make to it."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rag_app.cli.serve", "--config", str(config), "--port", str(self.port)],
                cwd=REPO, env=_env(env), stdout=out, stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, timeout_s: float = 300) -> Replica:
        """Once /api/health answers; RuntimeError if the process exits or is not healthy in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise RuntimeError(f"rag-app exited with {self.proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"rag-app not healthy after {timeout_s:.0f} s")
            time.sleep(0.5)

    def upload(self, folder: Path, names: list[str]) -> list[dict[str, Any]]:
        files = [("files", (n, (folder / n).read_bytes(), "text/markdown")) for n in names]
        r = httpx.post(f"{self.url}/api/documents", files=files, timeout=600)
        assert r.status_code == 200, r.text
        return list(r.json()["results"])

    def sync(self) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/api/sync", params={"wait": "true"}, timeout=600)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def search(self, query: str) -> list[tuple[str, float]]:
        r = httpx.get(f"{self.url}/api/search", params={"query": query}, timeout=60)
        assert r.status_code == 200, r.text
        return [(Path(hit["source"]).name, round(hit["scores"]["fused"], 6)) for hit in r.json()["results"]]

    def documents(self) -> list[str]:
        r = httpx.get(f"{self.url}/api/documents", timeout=30)
        return sorted(d["source"] for d in r.json()["documents"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
