"""Benchmark ingest.stores.bm25_index.BM25Index against rank_bm25.BM25Okapi and bm25s.

Synthetic corpus: Zipf(1.07) vocabulary, doc lengths uniform in [60, 200] tokens, seeded.
Queries: 3-8 terms drawn from the corpus *by frequency* (common terms -> long posting lists,
the hard case) plus a second set drawn uniformly from the corpus vocabulary (rare terms).

Each library runs in its own forked child; memory is measured in a second child with
tracemalloc (peak during build + one query, and what stays allocated while the index lives;
the shared input token lists are not counted).

    python benchmarks/bench_bm25.py                     # 100k docs, 200 queries
    python benchmarks/bench_bm25.py --docs 1000000 --skip-rank-bm25
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import platform
import queue
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # benchmarks/machine.py (scripts run from this folder)

from ingest.stores.bm25_index import BM25Index  # noqa: E402

# ---------------------------------------------------------------------------- memory helpers


def _in_child(fn: Callable[[], dict[str, Any]], trace: bool = False) -> dict[str, Any]:
    """Run ``fn`` in a forked child (isolated heap); with ``trace``, measure its allocations.

    tracemalloc sees Python objects and numpy buffers, so peak/retained are comparable across
    libraries (RSS deltas of a forked child are distorted by the parent's freed-but-resident heap).
    It slows Python-heavy code, so timings come from separate untraced runs.
    """
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def target() -> None:
        if trace:
            tracemalloc.start()
        res = fn()
        if trace:
            cur, peak = tracemalloc.get_traced_memory()
            res["mem_peak_mib"], res["mem_retained_mib"] = peak / 2**20, cur / 2**20
            res.pop("keep", None)
        q.put(res)

    p = ctx.Process(target=target)
    p.start()
    while True:  # a child that dies (an import error, the OOM killer) must not hang the benchmark
        try:
            res = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not p.is_alive():
                try:  # it may have put its result just before exiting
                    res = q.get(timeout=1.0)
                    break
                except queue.Empty:
                    raise RuntimeError(f"benchmark child exited with code {p.exitcode} and no result") from None
    p.join()
    return res


def _pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p)) * 1000  # ms


# ---------------------------------------------------------------------------- corpus


def make_corpus(n_docs: int, vocab: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.07
    p /= p.sum()
    lens = rng.integers(60, 201, n_docs)
    flat = rng.choice(vocab, size=int(lens.sum()), p=p).tolist()
    words = [f"w{i}" for i in range(vocab)]
    out, pos = [], 0
    for n in lens.tolist():
        out.append([words[j] for j in flat[pos : pos + n]])
        pos += n
    return out


def make_queries(docs: list[list[str]], n: int, seed: int, weighted: bool) -> list[list[str]]:
    rng = np.random.default_rng(seed + 1)
    counts: dict[str, int] = {}
    for d in docs[: min(len(docs), 20000)]:  # frequencies from a sample are plenty
        for t in d:
            counts[t] = counts.get(t, 0) + 1
    terms = list(counts)
    if weighted:
        w = np.array([counts[t] for t in terms], np.float64)
        w /= w.sum()
    else:
        w = None
    return [
        [terms[i] for i in rng.choice(len(terms), size=int(rng.integers(3, 9)), p=w)]
        for _ in range(n)
    ]


# ---------------------------------------------------------------------------- runners


def run_ours(docs, ids, queries, uqueries, sample, batch) -> dict[str, Any]:
    res: dict[str, Any] = {}
    idx = BM25Index(idf="okapi")  # rank_bm25's idf, so the top-10 can be compared (the speed is the same)
    t0 = time.perf_counter()
    if batch:
        for s in range(0, len(docs), batch):
            idx.add(ids[s : s + batch], docs[s : s + batch])
    else:
        idx.add(ids, docs)
    res["build_s"] = time.perf_counter() - t0
    res["stats"] = idx.stats()
    idx.search(queries[0], 10)  # warm the stats cache (first query after a mutation pays it)
    for name, qs in (("q", queries), ("uq", uqueries)):
        lat = []
        for q in qs:
            t = time.perf_counter()
            idx.search(q, 10)
            lat.append(time.perf_counter() - t)
        res[name] = lat
    res["top"] = [idx.search(q, 10) for q in sample]
    if not batch:  # persistence numbers once
        with tempfile.TemporaryDirectory() as d:
            idx.path = Path(d)  # attach a directory to the in-memory index, then persist it
            t = time.perf_counter()
            idx.save()
            res["save_s"] = time.perf_counter() - t
            res["disk_mib"] = sum(f.stat().st_size for f in Path(d).iterdir()) / 2**20
            t = time.perf_counter()
            BM25Index(d)
            res["load_s"] = time.perf_counter() - t
            idx.path = None
        # one add + first query: the incremental path ingestion actually uses
        t = time.perf_counter()
        idx.add(["fresh"], [queries[0] * 3])
        res["add1_s"] = time.perf_counter() - t
        t = time.perf_counter()
        idx.search(queries[1], 10)
        res["first_query_after_add_s"] = time.perf_counter() - t
        t = time.perf_counter()
        idx.delete(ids[:100])
        idx.search(queries[1], 10)
        res["delete100_plus_query_s"] = time.perf_counter() - t
    return res


def run_rank_bm25(docs, ids, queries, sample) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    ref = BM25Okapi(docs)
    res["build_s"] = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        ref.get_top_n(q, ids, n=10)
        lat.append(time.perf_counter() - t)
    res["q"] = lat
    top = []
    for q in sample:
        s = ref.get_scores(q)
        best = np.argsort(-s, kind="stable")[:10]
        top.append([(ids[i], float(s[i])) for i in best])
    res["top"] = top
    return res


def run_bm25s(docs, ids, queries, sample) -> dict[str, Any]:
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    r = bm25s.BM25(k1=1.5, b=0.75)  # default "lucene" idf: different scores from BM25Okapi
    r.index(docs, show_progress=False)
    res["build_s"] = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        r.retrieve([q], k=10, show_progress=False, n_threads=1)
        lat.append(time.perf_counter() - t)
    res["q"] = lat
    res["top"] = [
        [ids[int(i)] for i in r.retrieve([q], k=10, show_progress=False)[0][0]] for q in sample
    ]
    return res


def mem_ours(docs, ids, q) -> dict[str, Any]:
    idx = BM25Index(idf="okapi")
    idx.add(ids, docs)
    idx.search(q, 10)
    return {"keep": idx}


def mem_rank_bm25(docs, ids, q) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    ref = BM25Okapi(docs)
    ref.get_top_n(q, ids, n=10)
    return {"keep": ref}


def mem_bm25s(docs, ids, q) -> dict[str, Any]:
    import bm25s

    r = bm25s.BM25(k1=1.5, b=0.75)
    r.index(docs, show_progress=False)
    r.retrieve([q], k=10, show_progress=False, n_threads=1)
    return {"keep": r}


def compare_top(ours: list, ref: list) -> tuple[int, int]:
    """(identical, identical-up-to-ties) counts over the sample queries."""
    same = tie_same = 0
    for a, b in zip(ours, ref):
        if [c for c, _ in a] == [c for c, _ in b]:
            same += 1
            continue
        sa, sb = np.array([s for _, s in a]), np.array([s for _, s in b])
        if len(a) == len(b) and np.allclose(sa, sb, rtol=1e-6, atol=1e-9):
            kth = sb[-1]
            tol = 1e-9 + 1e-6 * abs(kth)
            if {c for c, s in a if s > kth + tol} == {c for c, s in b if s > kth + tol}:
                tie_same += 1
    return same, tie_same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=100_000, help="Zipf vocabulary size")
    ap.add_argument("--rank-bm25-queries", type=int, default=None,
                    help="queries for rank_bm25 (default: all); it is O(N) Python per token")
    ap.add_argument("--sample", type=int, default=30, help="queries checked for top-10 equality")
    ap.add_argument("--batch", type=int, default=1000, help="batch size of the incremental build")
    ap.add_argument("--skip-rank-bm25", action="store_true")
    ap.add_argument("--skip-bm25s", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.skip_bm25s and importlib.util.find_spec("bm25s") is None:
        print("# bm25s is not installed, so its rows are skipped: pip install -e '.[bench]' adds it")
        args.skip_bm25s = True

    print(f"# BM25 benchmark: {args.docs:,} docs, {args.queries} queries, vocab {args.vocab:,}")
    print(f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    t = time.perf_counter()
    docs = make_corpus(args.docs, args.vocab, args.seed)
    ids = [f"{i:016x}" for i in range(args.docs)]
    queries = make_queries(docs, args.queries, args.seed, weighted=True)
    uqueries = make_queries(docs, args.queries, args.seed + 7, weighted=False)
    sample = queries[: args.sample]
    n_tok = sum(map(len, docs))
    print(f"# corpus: {n_tok:,} tokens (avg {n_tok / args.docs:.0f}/doc) generated in "
          f"{time.perf_counter() - t:.1f}s; query lengths 3-8, terms drawn by corpus frequency")

    results: dict[str, dict[str, Any]] = {}
    results["ours (bulk add)"] = _in_child(lambda: run_ours(docs, ids, queries, uqueries, sample, 0))
    results[f"ours (add in batches of {args.batch})"] = _in_child(
        lambda: run_ours(docs, ids, queries, uqueries, sample, args.batch))
    if not args.skip_rank_bm25:
        nq = args.rank_bm25_queries or args.queries
        results["rank_bm25 BM25Okapi"] = _in_child(
            lambda: run_rank_bm25(docs, ids, queries[:nq], sample))
    if not args.skip_bm25s:
        results["bm25s 0.3 (numpy backend)"] = _in_child(lambda: run_bm25s(docs, ids, queries, sample))

    mem = {"ours (bulk add)": _in_child(lambda: mem_ours(docs, ids, queries[0]), trace=True)}
    if not args.skip_rank_bm25:
        mem["rank_bm25 BM25Okapi"] = _in_child(
            lambda: mem_rank_bm25(docs, ids, queries[0]), trace=True)
    if not args.skip_bm25s:
        mem["bm25s 0.3 (numpy backend)"] = _in_child(
            lambda: mem_bm25s(docs, ids, queries[0]), trace=True)

    print()
    print("| implementation | build (s) | query p50 (ms) | query p95 (ms) | queries timed "
          "| peak alloc (MiB) | retained (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        m = mem.get(name)
        mp_, mr = (f"{m['mem_peak_mib']:.0f}", f"{m['mem_retained_mib']:.0f}") if m else ("–", "–")
        print(f"| {name} | {r['build_s']:.1f} | {_pct(r['q'], 50):.2f} | {_pct(r['q'], 95):.2f} | "
              f"{len(r['q'])} | {mp_} | {mr} |")
    ours = results["ours (bulk add)"]
    print(f"| ours, uniform-vocabulary queries (rare terms) | – | {_pct(ours['uq'], 50):.2f} | "
          f"{_pct(ours['uq'], 95):.2f} | {len(ours['uq'])} | – | – |")
    print()
    st = ours["stats"]
    print(f"- ours: {st['postings']:,} postings, {st['terms']:,} terms, {st['segments']} segment(s) "
          f"after bulk add; batched build ended with "
          f"{results[f'ours (add in batches of {args.batch})']['stats']['segments']} segments")
    print(f"- ours persistence: save {ours['save_s']:.2f}s, {ours['disk_mib']:.0f} MiB on disk, "
          f"load {ours['load_s']:.2f}s")
    print(f"- ours incremental: add 1 doc {ours['add1_s'] * 1000:.1f} ms, first query after it "
          f"{ours['first_query_after_add_s'] * 1000:.1f} ms (stats cache rebuilt), "
          f"delete 100 + query {ours['delete100_plus_query_s'] * 1000:.1f} ms")
    if "rank_bm25 BM25Okapi" in results:
        ref = results["rank_bm25 BM25Okapi"]
        same, ties = compare_top(ours["top"], ref["top"])
        same_b, ties_b = compare_top(results[f"ours (add in batches of {args.batch})"]["top"], ref["top"])
        print(f"- top-10 vs rank_bm25 on {len(sample)} queries: bulk {same} identical"
              f" (+{ties} identical up to score ties), batched {same_b} (+{ties_b})")
        print(f"- speed-up vs rank_bm25: build x{ref['build_s'] / ours['build_s']:.1f}, "
              f"query p50 x{_pct(ref['q'], 50) / _pct(ours['q'], 50):.0f}")
    if "bm25s 0.3 (numpy backend)" in results:
        bs = results["bm25s 0.3 (numpy backend)"]
        overlap = np.mean([len({c for c, _ in a} & set(b)) / 10 for a, b in zip(ours["top"], bs["top"])])
        print(f"- vs bm25s: build x{bs['build_s'] / ours['build_s']:.2f} (ours faster if > 1), "
              f"query p50 ratio ours/bm25s {_pct(ours['q'], 50) / _pct(bs['q'], 50):.2f}; "
              f"top-10 overlap {overlap:.0%} (bm25s uses Lucene idf, so rankings differ slightly)")


if __name__ == "__main__":
    main()
