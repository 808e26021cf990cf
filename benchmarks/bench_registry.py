"""The document registry's cost per call: the SQLAlchemy registry (``ingest/registry.py``) on SQLite
and on PostgreSQL, against the raw-``sqlite3`` registry it replaced (read from git, commit
``7d2b55c``), on the calls ingestion and sync make: ``put`` (one document and its chunks, one
transaction), ``get`` and ``source_of`` (per file, to classify it), ``chunk_ids()`` and
``documents()`` (per consistency check / sync), ``remove``.

    python benchmarks/bench_registry.py                 # 2,000 documents x 8 chunks, ~1 minute
    python benchmarks/bench_registry.py --no-postgres   # without a PostgreSQL server

PostgreSQL: a throwaway server started like the tests' (Debian's package, a Unix socket, fsync
off, so its figures are a lower bound for a durable server); SQLite runs with ``synchronous=FULL``
as the app does, so every ``put`` waits for an fsync.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model, offline_setup  # noqa: E402  (benchmarks/machine.py)

REPO = offline_setup()

from ingest.registry import Registry  # noqa: E402
from ingest.state import StateDatabase  # noqa: E402

OLD_COMMIT = "7d2b55c"


def old_registry_class() -> Any:
    """The raw-sqlite3 Registry as it was before the state database (loaded from git)."""
    source = subprocess.run(["git", "show", f"{OLD_COMMIT}:ingest/registry.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_registry.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_registry", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_registry"] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module.Registry


def timed(fn: Callable[[int], object], n: int) -> float:
    """Median ms per call over n calls (fn gets the call's index)."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(registry: Any, docs: int, chunks: int) -> dict[str, float]:
    ids = [[f"c{d}-{k}" for k in range(chunks)] for d in range(docs)]
    out = {
        "put": timed(lambda i: registry.put(f"/docs/f{i}.md", f"h{i}", "markdown", f"F{i}", ids[i]), docs),
        "get": timed(lambda i: registry.get(f"/docs/f{i}.md"), docs),
        "source_of": timed(lambda i: registry.source_of(f"h{i}"), docs),
        "chunk_ids(all)": timed(lambda i: registry.chunk_ids(), 5),
        "documents()": timed(lambda i: registry.documents(), 5),
        "remove(1)": timed(lambda i: registry.remove([f"/docs/f{i}.md"]), docs),
    }
    registry.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    results = {
        "sqlite3 (before)": run(old_registry_class()(work / "old.sqlite3"), args.docs, args.chunks),
        "SQLAlchemy, SQLite": run(Registry(work / "new.sqlite3"), args.docs, args.chunks),
    }
    if not args.no_postgres:
        from tests.support.postgres import PostgresServer, postgres_bin_dir

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            print("PostgreSQL is not installed (make postgres): skipped")
        else:
            server = PostgresServer(bin_dir).start()
            try:
                results["SQLAlchemy, PostgreSQL"] = run(Registry(StateDatabase(server.new_database())),
                                                        args.docs, args.chunks)
            finally:
                server.stop()
    print(f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}")
    print(f"{args.docs} documents x {args.chunks} chunks; median ms per call\n")
    ops = list(next(iter(results.values())))
    print("| registry | " + " | ".join(ops) + " |")
    print("|---|" + "---:|" * len(ops))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[op]:.3f}" for op in ops) + " |")


if __name__ == "__main__":
    main()
