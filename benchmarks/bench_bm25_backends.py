"""BM25 backends side by side: the in-process ``BM25Index`` (``bm25.backend: local``) and Milvus
full-text search (``bm25.backend: milvus``, ``ingest.stores.milvus_keyword.MilvusKeywordIndex`` on
Milvus Lite 2.5.1), over the same ``BM25Tokenizer`` tokens.

Quality, on the development sets (``../shared/data/scifact-dev`` and ``cmrc2018-trial``): the corpus
is chunked the way the app chunks it (``Chunker`` with multilingual-e5-small's tokenizer, 256-token
chunks, 32 overlap; the model itself is not loaded), each backend indexes the chunks, and each judged
query's BM25 leg alone returns 100 chunks; a document takes its best chunk's rank (as ``rag-eval``
does), and nDCG@10 is ``rag_app.evaluation.metrics``'. Agreement: the share of queries whose top-10
chunks are the same set in both backends, the share in the identical order, and the mean overlap.

Latency, on a synthetic corpus of N chunks (``bench_bm25.make_corpus``: Zipf(1.07) vocabulary of 100k
words, 60-200 tokens per chunk) with 200 frequency-weighted queries of 3-8 terms
(``bench_bm25.make_queries``): per query, what the retriever's keyword leg asks of the index:
``search`` (top 50, ``retrieval.bm25_top_k``), ``get_scores`` for 50 other chunks (the dense leg's
finds), ``max_score`` (for ``bm25_coverage``) and ``len`` (the pipeline's empty-corpus check). Median
and p95 in ms, each backend in this one process (Milvus Lite runs its own server process).

    python benchmarks/bench_bm25_backends.py                  # both sets + 100k chunks, ~5 min on 2 cores
    python benchmarks/bench_bm25_backends.py --sizes 10000 100000 --skip-quality
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from bench_bm25 import make_corpus, make_queries  # noqa: E402  (benchmarks/, scripts run from there)

from ingest.beir import corpus_id_of, iter_corpus, load_qrels, load_queries  # noqa: E402
from ingest.chunking import Chunker  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from ingest.settings import BM25Settings, ChunkerSettings, EmbedderSettings, MilvusSettings  # noqa: E402
from ingest.stores.bm25_index import BM25Index  # noqa: E402
from ingest.stores.milvus_keyword import MilvusKeywordIndex  # noqa: E402
from ingest.stores.milvus_store import MilvusVectorStore  # noqa: E402
from ingest.text_tokenizer import BM25Tokenizer  # noqa: E402
from ingest.types import Chunk  # noqa: E402
from rag_app.evaluation.beir_eval import paired_bootstrap  # noqa: E402
from rag_app.evaluation.metrics import ndcg_at_k, ndcg_query, per_query  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DATASETS = ("scifact-dev", "cmrc2018-trial")
DEPTH = 100  # chunks per query for the document ranking, as rag-eval's legs
TOP_K = 50  # retrieval.bm25_top_k
FILL = 50  # chunks scored by get_scores per query (the dense leg's finds)
DIM = 4  # the vectors are not searched here: the smallest that keeps the schema


def _ms(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) * 1000


def _open_milvus(folder: Path, settings: BM25Settings) -> MilvusVectorStore:
    store = MilvusVectorStore(MilvusSettings(), str(folder / "milvus.db"), DIM, full_text=settings)
    store.warm_up()
    return store


def _write_milvus(store: MilvusVectorStore, ids: Sequence[str], tokens: Sequence[Sequence[str]],
                  texts: Sequence[str] | None = None, batch: int = 2000) -> float:
    """Upsert the rows as the indexer would (constant vectors); returns the seconds it took."""
    t = time.perf_counter()
    for i in range(0, len(ids), batch):
        part = ids[i : i + batch]
        chunks = [
            Chunk(chunk_id=cid, doc_id=cid, source=cid, text=texts[i + j] if texts else "", ordinal=0)
            for j, cid in enumerate(part)
        ]
        store.upsert(chunks, np.ones((len(part), DIM), np.float32), keywords=tokens[i : i + batch])
    store.flush()
    return time.perf_counter() - t


def _agreement(local: list[list[str]], milvus: list[list[str]]) -> dict[str, float]:
    n = max(len(local), 1)
    return {
        "same_set": sum(set(a) == set(b) for a, b in zip(local, milvus)) / n,
        "same_order": sum(a == b for a, b in zip(local, milvus)) / n,
        "overlap": sum(len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(local, milvus)) / n,
    }


# ---------------------------------------------------------------------------- quality


def quality(name: str, chunker: Chunker, tokenizer: BM25Tokenizer, settings: BM25Settings, work: Path) -> dict[str, Any]:
    folder = SHARED / name
    t = time.perf_counter()
    chunks = [c for doc in iter_corpus(folder) for c in chunker.chunk(doc)]
    tokens = tokenizer.tokenize_many([c.text for c in chunks])
    ids = [c.chunk_id for c in chunks]
    corpus_of = {c.chunk_id: str(corpus_id_of(c.source)) for c in chunks}
    prep_s = time.perf_counter() - t
    qrels = load_qrels(folder, "dev")
    queries = {qid: text for qid, text in load_queries(folder).items() if qid in qrels}
    qtokens = {qid: tokenizer.tokenize(text) for qid, text in queries.items()}

    local = BM25Index(k1=settings.k1, b=settings.b, epsilon=settings.epsilon, idf=settings.idf)
    t = time.perf_counter()
    local.add(ids, tokens)
    local_build = time.perf_counter() - t
    store = _open_milvus(work / name, settings)
    try:
        milvus_build = _write_milvus(store, ids, tokens)
        milvus = MilvusKeywordIndex(store, settings)
        runs: dict[str, dict[str, dict[str, float]]] = {"local": {}, "milvus": {}}
        tops: dict[str, list[list[str]]] = {"local": [], "milvus": []}
        for backend, index in (("local", local), ("milvus", milvus)):
            for qid, q in qtokens.items():
                hits = index.search(q, DEPTH) if q else []
                docs: dict[str, float] = {}
                for cid, _ in hits:  # a document takes its best chunk's rank
                    docs.setdefault(corpus_of[cid], 1.0 / (len(docs) + 1))
                runs[backend][qid] = docs
                if q:
                    tops[backend].append([cid for cid, _ in hits[:10]])
    finally:
        store.close()
    per = {b: per_query(ndcg_query, runs[b], qrels, 10) for b in runs}
    return {
        "name": name, "chunks": len(ids), "queries": len(queries), "empty": sum(not q for q in qtokens.values()),
        "prep_s": prep_s, "build_s": {"local": local_build, "milvus": milvus_build},
        "ndcg": {b: ndcg_at_k(runs[b], qrels, 10) for b in runs},
        "diff": paired_bootstrap(per["milvus"], per["local"]),
        "agree": _agreement(tops["local"], tops["milvus"]),
    }


# ---------------------------------------------------------------------------- latency


def _time_leg(index: Any, queries: list[list[str]], fills: list[list[str]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"search": [], "get_scores": [], "max_score": [], "len": [], "leg": []}
    steps: list[tuple[str, Callable[[list[str], list[str]], object]]] = [
        ("search", lambda q, f: index.search(q, TOP_K)),
        ("get_scores", lambda q, f: index.get_scores(q, f)),
        ("max_score", lambda q, f: index.max_score(q)),
        ("len", lambda q, f: len(index)),
    ]
    for q, fill in zip(queries, fills):
        total = 0.0
        for name, step in steps:
            t = time.perf_counter()
            step(q, fill)
            dt = time.perf_counter() - t
            out[name].append(dt)
            total += dt
        out["leg"].append(total)
    return out


def latency(n: int, n_queries: int, settings: BM25Settings, work: Path) -> dict[str, Any]:
    t = time.perf_counter()
    docs = make_corpus(n, 100_000, 0)
    queries = make_queries(docs, n_queries, 0, weighted=True)
    gen_s = time.perf_counter() - t
    ids = [f"c{i}" for i in range(n)]
    rng = np.random.default_rng(1)
    fills = [[ids[j] for j in rng.choice(n, size=FILL, replace=False)] for _ in queries]

    local = BM25Index(k1=settings.k1, b=settings.b, epsilon=settings.epsilon, idf=settings.idf)
    t = time.perf_counter()
    local.add(ids, docs)
    local_build = time.perf_counter() - t
    store = _open_milvus(work / f"synthetic-{n}", settings)
    try:
        milvus_build = _write_milvus(store, ids, docs)
        milvus = MilvusKeywordIndex(store, settings)
        timings: dict[str, dict[str, list[float]]] = {}
        for backend, index in (("local", local), ("milvus", milvus)):
            _time_leg(index, queries[:5], fills[:5])  # warm-up (stats cache, connections)
            timings[backend] = _time_leg(index, queries, fills)
        agree = _agreement([[c for c, _ in local.search(q, 10)] for q in queries],
                           [[c for c, _ in milvus.search(q, 10)] for q in queries])
        bound_ratio = [milvus.max_score(q) / local.max_score(q) for q in queries[:50]]
    finally:
        store.close()
    return {"n": n, "tokens": sum(map(len, docs)), "gen_s": gen_s, "queries": len(queries),
            "build_s": {"local": local_build, "milvus": milvus_build}, "timings": timings, "agree": agree,
            "bound_ratio": float(np.median(bound_ratio))}


# ---------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000], help="synthetic corpus sizes (chunks)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--work", type=Path, help="folder for the Milvus Lite files (default: a temporary one)")
    ap.add_argument("--idf", choices=["lucene", "okapi"], default=BM25Settings().idf,
                    help="the in-process index's idf (bm25.idf; default: the shipped one)")
    args = ap.parse_args()
    import milvus_lite
    import pymilvus

    settings = BM25Settings(backend="milvus", idf=args.idf)
    print(f"# BM25 backends: in-process BM25Index ({settings.idf} idf) vs Milvus full-text search"
          f" (k1 {settings.k1}, b {settings.b})")
    print(f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, numpy {np.__version__},"
          f" pymilvus {pymilvus.__version__}, milvus-lite {getattr(milvus_lite, '__version__', '?')}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bm25-backends-"))
    started = time.perf_counter()
    try:
        if not args.skip_quality:
            tokenizer = BM25Tokenizer(stem_english=settings.stem_english, stopwords=settings.stopwords)
            embedder = Embedder(EmbedderSettings(cache_dir=str(REPO / "data" / "models")))  # its tokenizer only
            chunker = Chunker(ChunkerSettings(), embedder)
            rows = []
            for name in DATASETS:
                if not (SHARED / name / "corpus.jsonl").is_file():
                    print(f"# {name}: not found under {SHARED}, skipped")
                    continue
                rows.append(quality(name, chunker, tokenizer, settings, work))
            print("\n## Quality: the BM25 leg alone (100 chunks per query, a document at its best chunk's rank)\n")
            print("| set | chunks | judged queries | nDCG@10 local | nDCG@10 Milvus | Milvus - local (95% CI) |"
                  " same top-10 set | identical order | mean overlap |")
            print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
            for r in rows:
                d, lo, hi = r["diff"]
                a = r["agree"]
                print(f"| {r['name']} | {r['chunks']:,} | {r['queries']:,} | {r['ndcg']['local']:.3f} |"
                      f" {r['ndcg']['milvus']:.3f} | {d:+.3f} ({lo:+.3f} to {hi:+.3f}) | {a['same_set']:.1%} |"
                      f" {a['same_order']:.1%} | {a['overlap']:.3f} |")
            for r in rows:
                print(f"- {r['name']}: chunking + tokenizing {r['prep_s']:.1f} s; index build: local"
                      f" {r['build_s']['local']:.1f} s, Milvus write {r['build_s']['milvus']:.1f} s;"
                      f" {r['empty']} judged queries without a keyword token")
        for n in args.sizes:
            r = latency(n, args.queries, settings, work)
            print(f"\n## Latency: {n:,} synthetic chunks ({r['tokens']:,} tokens), {r['queries']} queries,"
                  f" ms per query\n")
            print("| backend | search p50 | p95 | get_scores p50 | p95 | max_score p50 | p95 | len p50 | p95 |"
                  " leg (all four) p50 | p95 | build (s) |")
            print("|---|" + "---:|" * 11)
            for backend, label in (("local", "in-process BM25Index"), ("milvus", "Milvus full-text (Lite)")):
                tm = r["timings"][backend]
                cells = " | ".join(f"{_ms(tm[k], 50):.2f} | {_ms(tm[k], 95):.2f}"
                                   for k in ("search", "get_scores", "max_score", "len", "leg"))
                print(f"| {label} | {cells} | {r['build_s'][backend]:.1f} |")
            a = r["agree"]
            print(f"- top-10 agreement on these queries: same set {a['same_set']:.1%}, identical order"
                  f" {a['same_order']:.1%}, mean overlap {a['overlap']:.3f}; median max_score ratio"
                  f" Milvus/local {r['bound_ratio']:.2f} (with okapi idf the formulas differ most on terms in"
                  " over half the chunks: rank_bm25 floors them at epsilon x the mean idf, Lucene's tends to 0)")
            print(f"- corpus generated in {r['gen_s']:.1f} s; Milvus build = upserting the rows with {DIM}-d"
                  " vectors and keywords (empty text), local build = one bulk add")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n# wall time {time.perf_counter() - started:.0f} s;"
          f" load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
