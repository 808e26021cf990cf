"""BM25 memory while an index grows the way ingestion grows it: one ``add`` per indexer batch.

Builds ``--docs`` synthetic documents (``bench_bm25.make_corpus``) in batches of ``--batch``
(the indexer's 256-chunk buffer) in two forked children, with tracemalloc on:

- **capped** (the index as shipped): no merge makes a segment above ``MAX_SEGMENT_POSTINGS``, and
  merges place postings in blocks of ``MERGE_BLOCK_POSTINGS``;
- **uncapped** (the alternative, the previous policy): both limits removed, i.e. the plain
  binary-counter merge whose last merges rewrite the whole index at once.

At ``--checkpoints`` points it records the retained memory (what the index holds) and the peak
traced memory since the previous point: "transient" = that peak minus the retained memory, the
extra memory a merge needs. Then it times ``--queries`` queries on the finished index (more
segments cost some query time) and checks both variants return the same top-10.

    python benchmarks/bench_bm25_growth.py                   # 300k docs, ~5 minutes
    python benchmarks/bench_bm25_growth.py --docs 1000000    # ~20 minutes, ~6 GiB
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
from bench_bm25 import _in_child, _pct, make_corpus, make_queries  # benchmarks/ (run from there)
from machine import cpu_model

from ingest.stores import bm25_index as bm25_mod
from ingest.stores.bm25_index import BM25Index

UNCAPPED = {"MAX_SEGMENT_POSTINGS": 1 << 62, "MERGE_BLOCK_POSTINGS": 1 << 62}


def grow(docs: list[list[str]], ids: list[str], batch: int, checkpoints: int, queries: list[list[str]],
         limits: dict[str, int]) -> dict[str, Any]:
    for name, value in limits.items():  # in the forked child only
        setattr(bm25_mod, name, value)
    idx = BM25Index()
    marks = set(np.linspace(0, len(docs), checkpoints + 1, dtype=int)[1:].tolist())
    rows = []
    tracemalloc.start()
    t0 = time.perf_counter()
    build_s = 0.0
    for s in range(0, len(docs), batch):
        idx.add(ids[s : s + batch], docs[s : s + batch])
        done = min(s + batch, len(docs))
        if any(s < m <= done for m in marks):
            build_s += time.perf_counter() - t0
            cur, peak = tracemalloc.get_traced_memory()
            rows.append({"docs": done, "retained": cur, "peak": peak, "segments": idx.stats()["segments"]})
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
    tracemalloc.stop()
    idx.search(queries[0], 10)  # the stats refresh after the last add
    lat, tops = [], []
    for q in queries:
        t = time.perf_counter()
        tops.append(idx.search(q, 10))
        lat.append(time.perf_counter() - t)
    return {"rows": rows, "build_s": build_s, "q": lat, "top": [[c for c, _ in t] for t in tops],
            "postings": idx.stats()["postings"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--checkpoints", type=int, default=6)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--vocab", type=int, default=100_000)
    args = ap.parse_args()
    t = time.perf_counter()
    docs = make_corpus(args.docs, args.vocab, seed=0)
    ids = [f"{i:064x}" for i in range(len(docs))]  # chunk ids are 64-hex content hashes
    queries = make_queries(docs, args.queries, seed=0, weighted=True)
    print(f"# BM25 memory while growing: {args.docs:,} docs added {args.batch} at a time, vocab {args.vocab:,}")
    print(f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"# command: python benchmarks/bench_bm25_growth.py {' '.join(sys.argv[1:])}")
    print(f"# corpus generated in {time.perf_counter() - t:.0f} s; limits as shipped: MAX_SEGMENT_POSTINGS "
          f"{bm25_mod.MAX_SEGMENT_POSTINGS:,}, MERGE_BLOCK_POSTINGS {bm25_mod.MERGE_BLOCK_POSTINGS:,}\n", flush=True)
    results = {}
    for name, limits in (("capped", {}), ("uncapped", UNCAPPED)):
        results[name] = _in_child(lambda limits=limits: grow(docs, ids, args.batch, args.checkpoints, queries, limits))
    mib = 2**20
    print("| docs | retained MiB | capped: segments | capped: peak transient MiB | uncapped: segments |"
          " uncapped: peak transient MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(results["capped"]["rows"], results["uncapped"]["rows"]):
        print(f"| {a['docs']:,} | {a['retained'] / mib:.0f} | {a['segments']} | {(a['peak'] - a['retained']) / mib:.0f} | "
              f"{b['segments']} | {(b['peak'] - b['retained']) / mib:.0f} |")
    same = sum(x == y for x, y in zip(results["capped"]["top"], results["uncapped"]["top"]))
    print()
    for name in ("capped", "uncapped"):
        r = results[name]
        print(f"- {name}: build {r['build_s']:.0f} s, {r['postings']:,} postings, query p50 {_pct(r['q'], 50):.2f} ms "
              f"p95 {_pct(r['q'], 95):.2f} ms ({len(r['q'])} queries)")
    print(f"- top-10 identical in {same}/{len(queries)} queries")
    print("- transient: the peak traced memory (Python objects + numpy buffers) between two checkpoints "
          "minus the memory retained at the later one; the token lists are the parent's and not counted")


if __name__ == "__main__":
    main()
