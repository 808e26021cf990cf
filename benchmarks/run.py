"""Run a named set of benchmarks one after another, saving each one's output.

    python benchmarks/run.py small     # every measurement at its small point
    python benchmarks/run.py 1m        # the 1M points: query latency, BM25 vs rank_bm25, BM25 growth (~30 min)
    python benchmarks/run.py server    # query latency against a local Milvus 2.3 standalone, 100k + 1M (an hour+)
    python benchmarks/run.py 1gb       # ingestion memory over a generated 1 GiB folder (1-2 hours on 2 cores)
    python benchmarks/run.py small --only query bm25     # a subset

Each step's output (Markdown tables with the command, machine and load) goes to
``.bench/results/<set>-<step>.md`` as well as the terminal; the wall time of every step and of
the set is printed at the end. BENCHMARKS.md has the results of these same commands and what
they mean.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / ".bench" / "results"

# step name -> script and arguments (run from benchmarks/, as each script expects)
SETS: dict[str, dict[str, list[str]]] = {
    "small": {
        "query": ["bench_query.py", "--sizes", "10000", "--reranker", "untrained"],
        "bm25": ["bench_bm25.py", "--docs", "100000"],
        "bm25-growth": ["bench_bm25_growth.py", "--docs", "200000", "--checkpoints", "4"],
        "ingest-overhead": ["bench_ingest.py", "--rounds", "2"],
        "ingest-memory": ["bench_ingest.py", "rss", "--sizes-mb", "2", "5"],
        "bm25-backends": ["bench_bm25_backends.py", "--sizes", "10000"],
        "registry": ["bench_registry.py"],
    },
    "1m": {
        "query": ["bench_query.py", "--sizes", "1000000", "--ivf", "1024:16", "--reranker", "untrained"],
        "bm25": ["bench_bm25.py", "--docs", "1000000", "--rank-bm25-queries", "10", "--sample", "10", "--skip-bm25s"],
        "bm25-growth": ["bench_bm25_growth.py", "--docs", "1000000", "--checkpoints", "10"],
    },
    "server": {
        "query": ["bench_query.py", "--milvus-standalone", "--sizes", "100000", "1000000", "--ivf", "1024:16"],
    },
    "1gb": {
        "ingest-memory": ["bench_ingest.py", "rss", "--sizes-mb", "1000", "--layers", "0"],
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps of the set")
    args = ap.parse_args()
    steps = SETS[args.set]
    if args.only:
        unknown = sorted(set(args.only) - set(steps))
        if unknown:
            ap.error(f"set {args.set!r} has no step {', '.join(unknown)}; it has: {', '.join(steps)}")
        steps = {k: v for k, v in steps.items() if k in args.only}
    RESULTS.mkdir(parents=True, exist_ok=True)
    walls: list[tuple[str, float, int]] = []
    started = time.perf_counter()
    for name, argv in steps.items():
        out_path = RESULTS / f"{args.set}-{name}.md"
        print(f"\n## {args.set}: {name} -> {out_path}\n$ python benchmarks/{' '.join(argv)}", flush=True)
        t = time.perf_counter()
        with out_path.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [sys.executable, *argv], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:  # tee: progress on the terminal, everything in the file
                sys.stdout.write(line)
                out.write(line)
            rc = proc.wait()
        walls.append((name, time.perf_counter() - t, rc))
    total = time.perf_counter() - started
    print(f"\n## {args.set}: wall times")
    for name, seconds, rc in walls:
        print(f"- {name}: {seconds:.0f} s" + (f" (FAILED, exit {rc})" if rc else ""))
    print(f"- all: {total:.0f} s ({total / 60:.1f} min)")
    return 1 if any(rc for _, _, rc in walls) else 0


if __name__ == "__main__":
    sys.exit(main())
