"""Load test: simulated users chatting and searching at once against the real app, on loopback.

The app is the real ``rag-app`` entry point in its own process (``python -m rag_app.cli.serve``): the 6
sample documents indexed with e5-small into Milvus Lite + BM25, the Gradio UI mounted, HTTP basic login
on. Only the LLM is replaced, by the local OpenAI-compatible stub server (``tests/support/stub_llm_server.py``,
a few short deltas): the figures are the app's own cost (HTTP, login, question cleaning, embedding,
hybrid retrieval, prompt building, SSE streaming), not an LLM's.

Each user loops without pause until the time is up, picking at random: ``POST /api/ask`` (JSON),
``POST /api/ask`` with ``stream: true`` (SSE, read to the final event) or ``GET /api/search``, over
Chinese and English questions, covered ones and ones the knowledge base refuses. A request fails on a
transport error, a non-200 status, or a body without its answer / final event / results. A 1-user
phase runs first, in the same run, as the baseline that the N-user figures are compared with.

    python benchmarks/bench_load.py                        # 20 users for 60 s (+ 20 s baseline), writes BENCHMARKS.md
    python benchmarks/bench_load.py --users 5 --duration 10 --baseline-duration 0 --no-write

``run_load`` and ``serve_in_thread`` are also used by ``tests/rag_app/api/test_load_smoke.py``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged models only: never a download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SECTION = "## Load test (20 users)"
KINDS = ("ask", "ask_stream", "search")
MIX = {"ask": 0.35, "ask_stream": 0.35, "search": 0.30}
QUESTIONS = [
    "入职满五年的正式员工每年有几天带薪年假？",
    "报销单需要在费用发生后多少天内提交？",
    "What is the maximum upload size per file in Lumen Beacon 3.2?",
    "Which PostgreSQL version does Lumen Beacon 3.2 require?",
    "How long must passwords be according to the security policy?",
    "How do I bake a chocolate cake?",  # not covered: refused without an LLM call
    "巧克力蛋糕应该怎么烤？",
]

log = logging.getLogger("bench_load")


# --------------------------------------------------------------------------------------------------
# The load
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    kind: str
    latency_s: float
    ok: bool
    detail: str = ""  # why it failed
    server_ms: dict[str, float] | None = None  # /api/search only: the retriever's own timings


@dataclass
class LoadResult:
    users: int
    duration_s: float
    wall_s: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]


@dataclass(frozen=True)
class KindStats:
    kind: str
    count: int
    failures: int
    p50_s: float
    p95_s: float
    max_s: float
    per_s: float


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a latency some request actually had."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(result: LoadResult) -> list[KindStats]:
    """Per request kind, then all together ("all")."""
    rows = []
    for kind in (*KINDS, "all"):
        samples = [s for s in result.samples if kind in (s.kind, "all")]
        latencies = [s.latency_s for s in samples]
        rows.append(
            KindStats(
                kind=kind,
                count=len(samples),
                failures=sum(not s.ok for s in samples),
                p50_s=percentile(latencies, 50),
                p95_s=percentile(latencies, 95),
                max_s=max(latencies, default=float("nan")),
                per_s=len(samples) / result.wall_s if result.wall_s else 0.0,
            )
        )
    return rows


def _check_sse(text: str) -> str:
    """'' when the SSE body is well formed and ends with exactly one final event, else why not."""
    blocks = [b for b in text.strip().split("\n\n") if b]
    if not blocks:
        return "empty stream"
    kinds = []
    for block in blocks:
        lines = block.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            return f"malformed SSE block: {block[:120]!r}"
        json.loads(lines[1][6:])
        kinds.append(lines[0][7:])
    if kinds[-1] != "final" or kinds.count("final") != 1:
        return f"stream ended with {kinds[-1]!r}"
    return ""


async def _request(client: httpx.AsyncClient, kind: str, question: str) -> tuple[str, dict[str, float] | None]:
    """One request: ('' when it succeeded, else why it failed; the search's server timings)."""
    if kind == "search":
        resp = await client.get("/api/search", params={"query": question})
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}: {resp.text[:200]}", None
        body = resp.json()
        return ("" if "results" in body else "no results field"), body.get("timings_ms")
    if kind == "ask":
        resp = await client.post("/api/ask", json={"question": question})
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}: {resp.text[:200]}", None
        body = resp.json()
        return ("" if body.get("answer") and "error" not in body else f"no answer: {str(body)[:200]}"), None
    async with client.stream("POST", "/api/ask", json={"question": question, "stream": True}) as resp:
        text = (await resp.aread()).decode("utf-8")
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}: {text[:200]}", None
        return _check_sse(text), None


async def _user(client: httpx.AsyncClient, rng: random.Random, deadline: float, samples: list[Sample]) -> None:
    kinds, weights = list(MIX), list(MIX.values())
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        question = rng.choice(QUESTIONS)
        t0 = time.perf_counter()
        server_ms = None
        try:
            why, server_ms = await _request(client, kind, question)
        except (httpx.HTTPError, ValueError) as exc:  # transport errors, timeouts, bad JSON
            why = f"{type(exc).__name__}: {exc}"
        samples.append(Sample(kind, time.perf_counter() - t0, not why, why, server_ms))
        if why:
            log.warning("%s failed: %s", kind, why)


async def _run(base_url: str, users: int, duration_s: float, auth: tuple[str, str] | None, seed: int,
               timeout_s: float) -> LoadResult:
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=base_url, auth=auth, limits=limits, timeout=timeout_s) as client:
        samples: list[Sample] = []
        t0 = time.perf_counter()
        deadline = t0 + duration_s
        await asyncio.gather(*(_user(client, random.Random(seed + i), deadline, samples) for i in range(users)))
        return LoadResult(users, duration_s, time.perf_counter() - t0, samples)


def run_load(
    base_url: str,
    *,
    users: int = 20,
    duration_s: float = 60.0,
    auth: tuple[str, str] | None = None,
    seed: int = 0,
    timeout_s: float = 60.0,
) -> LoadResult:
    """``users`` concurrent simulated users against ``base_url`` for ``duration_s`` (then each
    finishes its request in flight)."""
    return asyncio.run(_run(base_url, users, duration_s, auth, seed, timeout_s))


# --------------------------------------------------------------------------------------------------
# Serving the app
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_in_thread(app: Any, timeout_s: float = 60.0, log_level: str = "info") -> Iterator[str]:
    """uvicorn serving ``app`` on a free loopback port in this process (lifespan included);
    yields the base URL. Its loggers (access log included) propagate to this process's logging."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level=log_level, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def retrieval_breakdown(result: LoadResult) -> dict[str, float]:
    """Median server-side retrieval timings (ms) of the searches that reached the retriever."""
    timed = [s.server_ms for s in result.samples if s.ok and s.server_ms and "total" in s.server_ms]
    steps = ("embed", "dense", "bm25", "merge", "total")
    return {k: statistics.median(t.get(k, 0.0) for t in timed) for k in steps} if timed else {}


def _breakdown_text(b: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f} ms" for k, v in b.items()) if b else "none timed"


def table(rows: Sequence[KindStats]) -> str:
    lines = [
        "| request | count | failed | p50 ms | p95 ms | max ms | requests/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"ask": "`POST /api/ask` (JSON)", "ask_stream": "`POST /api/ask` (SSE stream)",
             "search": "`GET /api/search`", "all": "**all**"}
    for r in rows:
        lines.append(
            f"| {names[r.kind]} | {r.count} | {r.failures} | {r.p50_s * 1000:.0f} | {r.p95_s * 1000:.0f}"
            f" | {r.max_s * 1000:.0f} | {r.per_s:.1f} |"
        )
    return "\n".join(lines)


def section(res: dict[str, Any], command: str) -> str:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from machine import cpu_model

    load, base = res["load"], res["baseline"]
    all_load = next(r for r in summarize(load) if r.kind == "all")
    lines = [
        SECTION,
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()}-core {platform.machine()} CPU ({cpu_model()}); Python"
        f" {platform.python_version()}. Measured {time.strftime('%Y-%m-%d')}. The server, the load generator"
        f" and the stub LLM share the machine, and other jobs were running on it (1-minute load average"
        f" {res['loadavg_before']:.1f} just before the {load.users}-user phase, {res['loadavg_after']:.1f} at its"
        " end, this run included): treat latencies as upper bounds.",
        "",
        f"Setup: `rag-app` (uvicorn, the Gradio UI mounted, HTTP basic login on) over the 6 sample documents"
        f" ({res['chunks']} chunks; e5-small on CPU, Milvus Lite, BM25), on loopback. The LLM is the stub server"
        f" (`tests/support/stub_llm_server.py`: {res['deltas']} deltas, {res['delay_ms']:.0f} ms apart), so the figures"
        " are the app's own cost. Each simulated user loops without pause: 35% `POST /api/ask`, 35% the same"
        " streamed (read to the final event), 30% `GET /api/search`, over 7 questions (Chinese and English;"
        " 2 of them not covered, refused without an LLM call). Latency: request sent to last byte read.",
        "",
        f"**{load.users} users for {load.duration_s:.0f} s: {len(load.samples)} requests,"
        f" {len(load.failures)} failed** (server log: {res['server_errors']} error lines).",
        "",
        table(summarize(load)),
        "",
    ]
    if base is not None:
        all_base = next(r for r in summarize(base) if r.kind == "all")
        lines += [
            f"Baseline in the same run, 1 user for {base.duration_s:.0f} s ({len(base.samples)} requests,"
            f" {len(base.failures)} failed):",
            "",
            table(summarize(base)),
            "",
            f"Ratios, {load.users} users vs 1 user (all requests): throughput"
            f" {all_load.per_s / all_base.per_s:.2f}x, p50 latency {all_load.p50_s / all_base.p50_s:.1f}x,"
            f" p95 latency {all_load.p95_s / all_base.p95_s:.1f}x.",
            "",
        ]
    search = next(r for r in summarize(load) if r.kind == "search")
    breakdown = retrieval_breakdown(load)
    share = breakdown.get("embed", 0.0) / (search.p50_s * 1000) if search.p50_s > 0 else 0.0
    lines += [
        "Where the time goes: the retriever's own timings, returned by `/api/search` (medians over the"
        f" searches above): {load.users} users: {_breakdown_text(breakdown)};"
        f" 1 user: {_breakdown_text(retrieval_breakdown(base) if base else {})}. Under load the query"
        f" embedding is {share:.0%} of the search's median client latency ({search.p50_s * 1000:.0f} ms):"
        " the concurrent embeddings share the CPU cores (with the load generator and the stub here), so"
        " each takes longer; Milvus Lite, BM25 and the HTTP layer stay small.",
        "",
        res["notes"],
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    # REPO is on sys.path (above): the test helpers are the package ``tests.support``.
    from tests.support.app_process import ingest, running_app, write_config
    from tests.support.stub_llm_server import DEFAULT_DELTAS, StubLLMServer

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    user, password = "bench", secrets.token_urlsafe(16)
    with StubLLMServer(delay_s=args.llm_delay_ms / 1000) as stub:
        config = write_config(work, REPO / "data" / "models", stub.base_url, ui={"auth_user": user})
        env = {"RAG_UI__AUTH_PASSWORD": password}  # the password only ever travels in the environment
        log.info("indexing the samples into %s", work / "data")
        ingest(config, [REPO / "samples"], env)
        server_log = work / "server.log"
        with running_app(config, server_log, env, timeout_s=args.start_timeout) as base_url:
            status = httpx.get(f"{base_url}/api/status", auth=(user, password), timeout=30).json()
            chunks = int(status["counts"]["registry_chunks"])
            # A short warm-up first: the first LLM call builds the backend, the first requests warm
            # caches and connections; none of that belongs in the figures.
            warm = run_load(base_url, users=3, duration_s=3, auth=(user, password), seed=999)
            log.info("warm-up: %d requests, %d failed", len(warm.samples), len(warm.failures))
            baseline = None
            if args.baseline_duration > 0:
                log.info("baseline: 1 user for %.0f s", args.baseline_duration)
                baseline = run_load(base_url, users=1, duration_s=args.baseline_duration, auth=(user, password))
            loadavg_before = os.getloadavg()[0]
            log.info("load: %d users for %.0f s", args.users, args.duration)
            load = run_load(base_url, users=args.users, duration_s=args.duration, auth=(user, password), seed=1)
            loadavg_after = os.getloadavg()[0]
        server_text = server_log.read_text(encoding="utf-8", errors="replace")
    server_errors = [ln for ln in server_text.splitlines() if re.search(r"\bERROR\b|Traceback", ln)]
    for ln in server_errors[:20]:
        log.warning("server: %s", ln)
    if password in server_text:
        raise SystemExit(f"the login password appeared in the server log ({server_log})")
    shutil.rmtree(work, ignore_errors=True)  # kept above when anything failed, for the server log
    notes = (
        "All API requests run in the server's thread pool (sync endpoints; `ui.concurrency_limit` only"
        " limits the Gradio queue). Each request cleans and bounds the question, embeds it once on CPU,"
        " then searches Milvus Lite and BM25; with many more users than cores, throughput is bounded by"
        " the CPU and the extra users turn into queueing latency, not into errors."
    )
    return {
        "load": load, "baseline": baseline, "chunks": chunks, "server_errors": len(server_errors),
        "deltas": len(DEFAULT_DELTAS), "delay_ms": args.llm_delay_ms, "notes": notes,
        "loadavg_before": loadavg_before, "loadavg_after": loadavg_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--baseline-duration", type=float, default=20.0, help="seconds of 1-user baseline (0: none)")
    parser.add_argument("--llm-delay-ms", type=float, default=10.0, help="stub LLM: pause before each delta")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for rag-app")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "pymilvus", "httpx", "httpcore", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    res = run(args)
    command = "python benchmarks/bench_load.py" + "".join(
        f" {flag}" for flag, on in (
            (f"--users {args.users}", args.users != 20),
            (f"--duration {args.duration:g}", args.duration != 60),
            (f"--baseline-duration {args.baseline_duration:g}", args.baseline_duration != 20),
            (f"--llm-delay-ms {args.llm_delay_ms:g}", args.llm_delay_ms != 10),
        ) if on
    )
    text = section(res, command)
    sys.stdout.write(text + "\n")
    failures = res["load"].failures + (res["baseline"].failures if res["baseline"] else [])
    if not args.no_write:
        if args.users != 20:
            sys.stdout.write(f"\nnot written: {SECTION!r} is for 20 users\n")
        else:
            sys.path.insert(0, str(REPO / "benchmarks"))
            from machine import write_section

            write_section(REPO / "BENCHMARKS.md", SECTION, text)
            sys.stdout.write(f"\nwrote {SECTION!r} to {REPO / 'BENCHMARKS.md'}\n")
    if failures:
        raise SystemExit(f"{len(failures)} requests failed")


if __name__ == "__main__":
    main()
