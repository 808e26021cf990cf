"""The scale-out shape against a real Milvus server: Milvus 2.3 standalone (the PyPI ``milvus``
package: the Go server binary with embedded etcd and local storage, no Docker) configured by
``configs/milvus-server.yaml`` itself (HNSW), and a PostgreSQL server for the state. Two identical
``rag-app`` replicas, each with its own data directory, as in docker-compose.yml. docker-compose.yml
pins Milvus 2.5 (full-text search); 2.3.5 is the newest server PyPI has and has no BM25 function,
so keyword search is off here (``bm25.backend: none``): tests/deploy/test_replicas.py runs the
replicas with BM25 in Milvus on the Milvus Lite 2.5 engine."""
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

from tests.support.app_process import REPO, Replica, _env, rag_ingest
from tests.support.stub_llm_server import StubLLMServer

pytestmark = pytest.mark.integration  # a Milvus server process, PostgreSQL, rag-ingest and rag-app processes

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


def server_config(work: Path, models_dir: Path, uri: str, db_url: str = "", stub_url: str = "") -> Path:
    """configs/milvus-server.yaml as shipped, with only the addresses of this machine (and no
    keyword search: Milvus 2.3 has no full-text search)."""
    config = yaml.safe_load((REPO / "configs" / "milvus-server.yaml").read_text(encoding="utf-8"))
    config["data_dir"] = str(work / "data")  # this replica's own
    config["log_level"] = "WARNING"
    config["embedder"]["cache_dir"] = str(models_dir)
    config["milvus"]["uri"] = uri
    config["bm25"]["backend"] = "none"
    config["database"] = {"url": db_url}
    config["calibration"] = {"automatic": False}
    if stub_url:
        config["llm"] = {"backend": "openai", "base_url": stub_url, "openai_model": "stub"}
    config["ui"] = {**config.get("ui", {}), "host": "127.0.0.1"}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


ANNUAL_LEAVE = "入职满五年的正式员工每年有几天带薪年假？"
SECURITY = "How do I report a security incident?"
CANTEEN = "Which day does the canteen serve dumplings?"


def test_two_replicas_share_milvus_standalone_and_postgresql(
    milvus_standalone: str, postgres_url: str, tmp_path: Path, e5_model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "samples", docs)
    with StubLLMServer() as stub:
        configs = [server_config(tmp_path / f"replica{i}", e5_model_dir.parent, milvus_standalone, postgres_url,
                                 stub.base_url) for i in (1, 2)]
        out = rag_ingest(configs[0], *map(str, sorted(docs.iterdir())))  # indexed through one replica's config
        assert "6 indexed" in out and "0 failed" in out, out

        from pymilvus import MilvusClient

        client = MilvusClient(uri=milvus_standalone)
        try:
            (index,) = [client.describe_index("chunks", name) for name in client.list_indexes("chunks")]
            assert index["index_type"] == "HNSW" and int(index["M"]) == 16 and int(index["efConstruction"]) == 200
        finally:
            client.close()

        replicas = [Replica(c, tmp_path / f"replica{i}.log") for i, c in enumerate(configs, start=1)]
        try:
            one, two = (r.wait_healthy() for r in replicas)
            assert one.documents() == two.documents() and len(one.documents()) == 6
            for query, top in ((ANNUAL_LEAVE, "employee_handbook_zh.md"), (SECURITY, "security_policy_en.html")):
                assert one.search(query) == two.search(query)  # the same chunks with the same scores
                assert one.search(query)[0][0] == top
            # An upload through one replica is searchable through the other within seconds.
            uploads = tmp_path / "uploads"
            uploads.mkdir()
            (uploads / "canteen.md").write_text("# Canteen\n\nThe canteen serves dumplings every Thursday.\n",
                                                encoding="utf-8")
            assert one.upload(uploads, ["canteen.md"])[0]["status"] == "indexed"
            deadline = time.monotonic() + 5
            while not two.search(CANTEEN)[0][0].startswith("canteen"):
                assert time.monotonic() < deadline, "the upload did not reach the other replica"
                time.sleep(0.3)
            # A delete through the other is gone from both.
            source = next(s for s in two.documents() if Path(s).name.startswith("canteen"))
            assert httpx.delete(f"{two.url}/api/documents", params={"source": source}, timeout=60).status_code == 200
            for replica in (one, two):
                assert not any(n.startswith("canteen") for n, _ in replica.search(CANTEEN))
        finally:
            for r in replicas:
                r.stop()
    check = rag_ingest(configs[1], "--check")
    assert "OK, the stores agree" in check, check


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
