"""The one job model: a failing body marks its job (and its unfinished files) failed, and the worker
goes on with the next job; jobs run one at a time in arrival order."""
from __future__ import annotations

import threading

from rag_app.service.jobs import FileResult, Job, JobWorker, start_in_thread


def test_a_failing_body_marks_the_job_and_its_unfinished_files_failed() -> None:
    job = Job("upload")
    for name, status in (("a.md", "indexed"), ("b.md", "indexing"), ("c.md", "queued")):
        job.add_result(FileResult(name, status))

    def body(job: Job) -> None:
        raise ValueError("disk full")

    job.run(body)
    assert job.state == "failed" and job.error == "ValueError: disk full" and not job.running
    assert [(r.name, r.status) for r in job.snapshot()] == [("a.md", "indexed"), ("b.md", "failed"), ("c.md", "failed")]
    assert job.snapshot()[2].detail == job.error and job.files_progress == (3, 3)
    assert job.wait(0)  # finished is set whatever happened


def test_the_worker_survives_a_failed_job_and_keeps_arrival_order() -> None:
    worker = JobWorker(name="test-worker")
    order: list[str] = []
    gate = threading.Event()

    def blocked(job: Job) -> None:
        gate.wait(10)
        order.append("first")

    def failing(job: Job) -> None:
        order.append("second")
        raise RuntimeError("boom")

    def fine(job: Job) -> None:
        order.append("third")
        job.value = 42

    try:
        first = worker.submit(Job("upload"), blocked)
        second = worker.submit(Job("delete"), failing)
        third = worker.submit(Job("reindex"), fine)
        assert second.state == third.state == "queued" and worker.pending >= 1
        gate.set()
        assert third.wait(10) and first.wait(0) and second.wait(0)
        assert order == ["first", "second", "third"]
        assert (first.state, second.state, third.state) == ("done", "failed", "done") and third.value == 42
        assert second.error == "RuntimeError: boom"
        # Still alive for the next one.
        again = worker.submit(Job("upload"), fine)
        assert again.wait(10) and again.state == "done"
    finally:
        worker.stop()


def test_stage_progress_and_a_job_in_its_own_thread() -> None:
    def body(job: Job) -> None:
        for step in range(3):
            job.progress("train", step + 1, 3, f"loss {1 / (step + 1):.2f}")
        job.report = ["done"]

    job = start_in_thread(Job("tuning"), body, "test-tuning")
    assert job.wait(10) and job.state == "done"
    assert (job.stage, job.done, job.total, job.detail, job.report) == ("train", 3, 3, "loss 0.33", ["done"])
