"""The scale-out shape against a real Milvus server: Milvus 2.3 standalone (the PyPI ``milvus``
package: the Go server binary with embedded etcd and local storage, no Docker) configured by
``configs/milvus-server.yaml`` itself (HNSW). The writer is ``rag-ingest`` and the query replicas
are ``rag-app`` processes, each in its own process as in docker-compose.yml, sharing one Milvus
and one data directory. docker-compose.yml pins Milvus 2.5; this is the newest server PyPI has."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.app_process import REPO, _env, ingest, running_app

pytestmark = pytest.mark.integration  # a Milvus server process, rag-ingest and rag-app processes

SERVER_START_S = 90.0


@pytest.fixture(scope="module")
def milvus_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    milvus = pytest.importorskip("milvus", reason="the `milvus` package (Milvus standalone server) is a test extra")
    base = tmp_path_factory.mktemp("milvus-standalone")
    server = milvus.MilvusServer(wait_for_started=False)
    server.set_base_dir(str(base))
    server.start()  # picks free ports itself; proxy (gRPC) port below
    uri = f"http://127.0.0.1:{server.listen_port}"
    health = f"http://127.0.0.1:{server.webservice_port}/healthz"
    deadline = time.monotonic() + SERVER_START_S
    try:
        while True:
            if server.server_proc.poll() is not None or time.monotonic() > deadline:
                log = (base / "logs" / "milvus-stderr.log").read_text("utf-8", errors="replace")
                pytest.fail(f"Milvus standalone did not become healthy (exit {server.server_proc.poll()}):\n{log[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=2).text.strip() == "OK":
                    break
            time.sleep(0.5)
        yield uri
    finally:
        server.stop()
        shutil.rmtree(base / "bin", ignore_errors=True)  # ~0.5 GB of unpacked binaries


def server_config(work: Path, models_dir: Path, uri: str) -> Path:
    """configs/milvus-server.yaml as shipped, with only the addresses of this machine."""
    config = yaml.safe_load((REPO / "configs" / "milvus-server.yaml").read_text(encoding="utf-8"))
    config["data_dir"] = str(work / "data")  # the shared app-data volume
    config["log_level"] = "WARNING"
    config["embedder"]["cache_dir"] = str(models_dir)
    config["milvus"]["uri"] = uri
    config["ui"] = {**config.get("ui", {}), "host": "127.0.0.1"}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def cli(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rag_app.cli.ingest", "--config", str(config), *args],
        cwd=REPO, env=_env(None), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def sources(base_url: str, query: str) -> list[str]:
    r = httpx.get(f"{base_url}/api/search", params={"query": query}, timeout=60)
    assert r.status_code == 200, r.text
    return [Path(hit["source"]).name for hit in r.json()["results"]]


ANNUAL_LEAVE = "入职满五年的正式员工每年有几天带薪年假？"
SECURITY = "How do I report a security incident?"


def test_writer_and_two_query_replicas_share_milvus_standalone(
    milvus_standalone: str, tmp_path: Path, e5_model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "samples", docs)
    config = server_config(tmp_path, e5_model_dir.parent, milvus_standalone)

    out = ingest(config, [docs])  # the writer (`app` in docker-compose.yml)
    assert "6 indexed" in out and "0 failed" in out, out

    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_standalone)
    try:
        (index,) = [client.describe_index("chunks", name) for name in client.list_indexes("chunks")]
        assert index["index_type"] == "HNSW" and int(index["M"]) == 16 and int(index["efConstruction"]) == 200
        rows = client.query("chunks", filter="", output_fields=["count(*)"])[0]["count(*)"]
    finally:
        client.close()

    with running_app(config, tmp_path / "replica1.log") as replica1, running_app(config, tmp_path / "replica2.log") as replica2:
        for replica in (replica1, replica2):
            assert sources(replica, ANNUAL_LEAVE)[0] == "employee_handbook_zh.md"
            assert sources(replica, SECURITY)[0] == "security_policy_en.html"
            hit = httpx.get(f"{replica}/api/search", params={"query": ANNUAL_LEAVE}, timeout=60).json()["results"][0]
            assert hit["scores"]["dense"] > 0 and hit["scores"]["bm25"] > 0  # both shared stores answer
        assert len(httpx.get(f"{replica1}/api/documents", timeout=30).json()["documents"]) == 6

        # The writer removes a document while the replicas run: neither Milvus nor BM25 may still
        # return it from either replica (BM25 files are followed within a second).
        cli(config, "--delete", str(docs / "security_policy_en.html"))
        deadline = time.monotonic() + 15
        while any("security_policy_en.html" in sources(r, SECURITY) for r in (replica1, replica2)):
            assert time.monotonic() < deadline, "a replica still returns the deleted document"
            time.sleep(0.5)
        assert sources(replica2, ANNUAL_LEAVE)[0] == "employee_handbook_zh.md"

    check = cli(config, "--check")
    assert "OK, the stores agree" in check, check
    client = MilvusClient(uri=milvus_standalone)
    try:
        after = client.query("chunks", filter="", output_fields=["count(*)"])[0]["count(*)"]
    finally:
        client.close()
    assert 0 < after < rows


def test_server_down_is_a_clear_message_not_a_hang(tmp_path: Path, e5_model_dir: Path) -> None:
    from tests.support.app_process import free_port

    config = server_config(tmp_path, e5_model_dir.parent, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rag_app.cli.ingest", "--config", str(config), str(REPO / "samples")],
        cwd=REPO, env=_env(None), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and time.monotonic() - started < 60
    message: Any = proc.stderr.strip().splitlines()[-1]
    assert "cannot open Milvus at http://127.0.0.1:" in message and "Traceback" not in proc.stderr, proc.stderr[-1500:]
