"""Every replica equal, for real and without Docker: identical ``rag-app`` processes, each with its
own data directory (no shared volume), sharing a PostgreSQL server (registry, leases; started by
the test suite) and a Milvus 2.5 server (vectors and BM25 full-text search: the Milvus Lite 2.5.1
engine served on TCP, reached over gRPC like Milvus standalone).

Shown here: uploads of overlapping files through two replicas and a folder sync, all at once, end
with one copy of each chunk and stores that agree; both replicas answer the same question the same
way; an upload through one is searchable through the other at once; a replica SIGKILLed in the
middle of a sync and an upload leaves a state the next sync repairs, and its unfinished job shows
on the other replica as interrupted."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.registry import Registry
from ingest.state import StateDatabase
from rag_app.service.job_journal import LEASE_S
from tests.support.app_process import Replica, rag_ingest, write_config
from tests.support.milvus_lite_server import milvus_lite_server
from tests.support.stub_llm_server import StubLLMServer

pytestmark = pytest.mark.integration  # PostgreSQL, a Milvus server and app processes

FILES = {
    "leave.md": "# 年假\n\n入职满五年的正式员工每年享有十五天带薪年假，需提前一周申请。\n",
    "travel.md": "# Travel\n\nEconomy class is booked for flights under six hours; business class above that.\n",
    "security.md": "# Security\n\nReport a security incident to security@example.com within one hour of noticing it.\n",
    "parking.md": "# 停车\n\n员工停车场位于B2层，每月停车费为三百元，由行政部统一办理。\n",
    "laptops.md": "# Laptops\n\nEngineers get a new laptop every three years; the old one is wiped and recycled.\n",
}


@pytest.fixture
def shared_stores(tmp_path: Path, postgres_url: str) -> Iterator[tuple[str, str]]:
    with milvus_lite_server(tmp_path / "milvus-server") as milvus_uri:
        yield milvus_uri, postgres_url


@pytest.fixture
def stub_llm() -> Iterator[StubLLMServer]:
    with StubLLMServer() as stub:
        yield stub


def replica_config(work: Path, models: Path, stub: StubLLMServer, milvus_uri: str, db_url: str, folder: Path) -> Path:
    """The server shape on this machine: a replica's own data directory, the shared stores."""
    work.mkdir(parents=True, exist_ok=True)
    return write_config(
        work, models, stub.base_url,
        milvus={"uri": milvus_uri, "index_type": "FLAT"},  # the Milvus Lite engine has no HNSW
        bm25={"backend": "milvus"},
        database={"url": db_url},
        scheduler={"enabled": False, "folder": str(folder)},
        calibration={"automatic": False},
    )


def _two_replicas(
    tmp_path: Path, e5_model_dir: Path, stub: StubLLMServer, milvus_uri: str, db_url: str, synced: dict[str, str]
) -> tuple[Path, list[Path]]:
    """The synced folder (a read-only share every replica mounts) holding ``synced``, a folder of
    FILES to upload, and the two replicas' configurations."""
    folder, uploads = tmp_path / "team-docs", tmp_path / "to-upload"
    for target, files in ((folder, synced), (uploads, FILES)):
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
    configs = [replica_config(tmp_path / f"replica{i}", e5_model_dir.parent, stub, milvus_uri, db_url, folder)
               for i in (1, 2)]
    return uploads, configs


def _milvus_rows(uri: str) -> tuple[int, int]:
    """(rows counted, distinct chunk ids) of the shared collection."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        count = client.query("chunks", filter="", output_fields=["count(*)"])[0]["count(*)"]
        ids: list[str] = []
        it = client.query_iterator("chunks", batch_size=1000, filter="", output_fields=["chunk_id"])
        while page := it.next():
            ids.extend(r["chunk_id"] for r in page)
        it.close()
    finally:
        client.close()
    return int(count), len(set(ids)) if len(ids) == count else -len(ids)


def _assert_one_copy_each(milvus_uri: str, db_url: str) -> int:
    registry = Registry(StateDatabase(db_url))
    try:
        docs = registry.documents()
        registered = registry.chunk_count()
    finally:
        registry.close()
    doc_ids = [d.doc_id for d in docs]
    assert len(doc_ids) == len(set(doc_ids)), f"the same content registered twice: {docs}"
    count, distinct = _milvus_rows(milvus_uri)
    assert count == distinct == registered, (count, distinct, registered)
    return registered


def test_equal_replicas_take_overlapping_writes_at_once_and_agree(
    shared_stores: tuple[str, str], stub_llm: StubLLMServer, tmp_path: Path, e5_model_dir: Path
) -> None:
    milvus_uri, db_url = shared_stores
    uploads, configs = _two_replicas(
        tmp_path, e5_model_dir, stub_llm, milvus_uri, db_url, {n: FILES[n] for n in ("leave.md", "travel.md", "security.md")}
    )
    replicas = [Replica(c, tmp_path / f"replica{i}.log") for i, c in enumerate(configs, start=1)]
    try:
        one, two = (r.wait_healthy() for r in replicas)
        # All at once: the same files through both replicas (two of them also in the synced folder)
        # and a folder sync.
        errors: list[BaseException] = []
        results: dict[str, Any] = {}

        def run(name: str, fn: Any, *args: Any) -> None:
            try:
                results[name] = fn(*args)
            except BaseException as exc:  # reported below
                errors.append(exc)

        jobs = [
            threading.Thread(target=run, args=("up1", one.upload, uploads, ["leave.md", "parking.md", "laptops.md"])),
            threading.Thread(target=run, args=("up2", two.upload, uploads, ["laptops.md", "parking.md", "travel.md"])),
            threading.Thread(target=run, args=("sync", two.sync)),
        ]
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(600)
        assert not errors, errors
        statuses = [r["status"] for key in ("up1", "up2") for r in results[key]]
        assert set(statuses) <= {"indexed", "duplicate"}, results
        # Each content was indexed exactly once, by whichever replica or the sync came first; every
        # other copy was recognised as a duplicate (decided again under the writers' lock).
        counts = results["sync"]["last_counts"]
        assert statuses.count("indexed") + counts["indexed"] == len(FILES), results
        assert statuses.count("duplicate") + counts["duplicates"] == 6 + 3 - len(FILES), results

        # One copy of each content; Milvus (vectors and keywords) and the registry agree.
        assert _assert_one_copy_each(milvus_uri, db_url) > 0
        assert one.documents() == two.documents() and len(one.documents()) == len(FILES)
        assert "OK, the stores agree" in rag_ingest(configs[0], "--check")

        # Both replicas answer alike, from both legs of the shared stores.
        for query in ("入职满五年有几天年假？", "How do I report a security incident?", "员工停车费多少钱"):
            assert one.search(query) == two.search(query)
        assert one.search("停车费")[0][0].startswith("parking")  # a Chinese keyword, BM25 in Milvus

        # An upload through one replica is searchable through the other within seconds.
        (uploads / "canteen.md").write_text("# Canteen\n\nThe canteen serves dumplings every Thursday.\n", encoding="utf-8")
        assert one.upload(uploads, ["canteen.md"])[0]["status"] == "indexed"
        deadline = time.monotonic() + 5
        while not any(s.startswith("canteen") for s, _ in two.search("dumplings Thursday canteen")):
            assert time.monotonic() < deadline, "the upload did not reach the other replica"
            time.sleep(0.2)
        # ...and a delete through the other is gone from both.
        source = next(s for s in two.documents() if Path(s).name.startswith("canteen"))
        assert httpx.delete(f"{two.url}/api/documents", params={"source": source}, timeout=60).status_code == 200
        assert not any(s.startswith("canteen") for s, _ in one.search("dumplings Thursday canteen"))
    finally:
        for r in replicas:
            r.stop()


def test_a_replica_killed_mid_sync_and_upload_leaves_a_state_the_next_sync_repairs(
    shared_stores: tuple[str, str], stub_llm: StubLLMServer, tmp_path: Path, e5_model_dir: Path
) -> None:
    milvus_uri, db_url = shared_stores
    words = "harbor lantern copper meadow signal ledger orbit canvas timber falcon quarry beacon".split()
    notes = {  # enough work that the kill lands mid-way
        f"note{i:02d}.md": f"# Note {i}\n\n{' '.join(words[(i + j) % len(words)] for j in range(600))} topic{i}.\n"
        for i in range(40)
    }
    uploads, configs = _two_replicas(tmp_path, e5_model_dir, stub_llm, milvus_uri, db_url, notes)
    victim = Replica(configs[0], tmp_path / "victim.log").wait_healthy()
    survivor = Replica(configs[1], tmp_path / "survivor.log")
    try:
        for target, args in ((victim.sync, ()), (victim.upload, (uploads, list(FILES)))):
            threading.Thread(target=lambda t=target, a=args: _ignore_errors(t, *a), daemon=True).start()
        registry = Registry(StateDatabase(db_url))
        deadline = time.monotonic() + 300
        while len(registry.documents()) < 3:  # some of the work is done, not all
            assert time.monotonic() < deadline and victim.proc.poll() is None
            time.sleep(0.05)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.proc.wait(30)
        done_before = len(registry.documents())
        assert done_before < 40 + len(FILES), "the kill came after everything was done"

        survivor.wait_healthy()
        report = survivor.sync()  # the dead replica's sync lease does not block it
        assert report["last_ok"], report
        assert len(survivor.upload(uploads, list(FILES))) == len(FILES)
        assert len(registry.documents()) == 40 + len(FILES)
        registry.close()
        _assert_one_copy_each(milvus_uri, db_url)
        assert "OK, the stores agree" in rag_ingest(configs[1], "--check")

        # The dead replica's unfinished upload shows on the survivor, as interrupted once its lease
        # (job_journal.LEASE_S) has passed unrenewed.
        deadline = killed_at + LEASE_S + 20
        while True:
            jobs = httpx.get(f"{survivor.url}/api/jobs", timeout=30).json()["jobs"]
            theirs = [j for j in jobs if f":{victim.proc.pid}:" in j["holder"] and j["kind"] == "upload"]
            assert theirs, jobs
            if theirs[0]["state"] == "interrupted":
                break
            assert theirs[0]["state"] in ("queued", "running") and time.monotonic() < deadline, theirs
            time.sleep(1)
        assert any(j["kind"] == "upload" and j["state"] == "done" and j["this_replica"] for j in jobs)
    finally:
        victim.stop()
        survivor.stop()


def _ignore_errors(fn: Any, *args: Any) -> None:
    """Run a request whose server is about to be killed."""
    with contextlib.suppress(httpx.HTTPError, AssertionError):
        fn(*args)

