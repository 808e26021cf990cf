"""Background jobs in the state database: every replica sees every replica's jobs, with their
progress and per-file results; a job whose replica stopped renewing it reads as interrupted."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.state import StateDatabase
from rag_app.service import job_journal
from rag_app.service.job_journal import JobJournal
from rag_app.service.jobs import FileResult, Job, JobWorker


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


def test_a_replicas_jobs_reach_the_other_with_progress_and_results(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_journal, "HEARTBEAT_S", 0.1)
    one, two = JobJournal(StateDatabase(url), holder="one"), JobJournal(StateDatabase(url), holder="two")
    worker = JobWorker(recorder=one)
    started, release = time.monotonic(), False

    def body(job: Job) -> None:
        job.add_result(FileResult("a.md", "indexed", "3 chunks", "/data/uploads/a.md"))
        job.progress("embed", 1, 2)
        while not release and time.monotonic() - started < 30:
            time.sleep(0.02)

    job = worker.submit(Job("upload"), body)
    deadline = time.monotonic() + 10
    while not (seen := two.recent()) or seen[0]["stage"] != "embed":
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    (row,) = seen
    assert (row["kind"], row["state"], row["done"], row["total"], row["holder"]) == ("upload", "running", 1, 2, "one")
    assert row["files"] == [{"file": "a.md", "status": "indexed", "detail": "3 chunks", "source": "/data/uploads/a.md"}]
    assert not row["this_replica"] and one.recent()[0]["this_replica"]
    release = True
    assert job.wait(30)
    worker.stop()
    assert two.recent()[0]["state"] == "done"  # written when it ended, not on the next beat

    def failing(job: Job) -> None:
        raise OSError("disk full")

    failed = JobWorker(recorder=one)
    assert failed.submit(Job("sync"), failing).wait(30)
    failed.stop()
    newest = two.recent()[0]
    assert (newest["kind"], newest["state"], newest["error"]) == ("sync", "failed", "OSError: disk full")
    one.close()
    two.close()


def test_a_job_whose_replica_died_reads_as_interrupted(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_journal, "LEASE_S", 0.5)
    dead, alive = JobJournal(StateDatabase(url), holder="dead"), JobJournal(StateDatabase(url), holder="alive")
    job = Job("upload", state="running")
    dead.track(job)
    dead._stop.set()  # the replica is gone: no more beats, no end state
    assert alive.recent()[0]["state"] == "running"
    time.sleep(0.8)
    row = alive.recent()[0]
    assert row["state"] == "interrupted" and "(dead) stopped before it finished" in row["error"]
    alive.close()
