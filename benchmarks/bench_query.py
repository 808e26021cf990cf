"""Query latency without the LLM: the real ``HybridRetriever`` over Milvus Lite + our BM25.

Each query runs ``HybridRetriever.run`` (dense search in Milvus, BM25 search, merging with the
other leg's scores, fusion, calibration, threshold) with the project's default retrieval settings,
on a synthetic corpus of N chunks:

- dense: clustered unit vectors (384-d, 1,024 Gaussian clusters; each vector is a cluster centre
  plus noise of the same norm), stored with the chunk's text and meta like real chunks;
- BM25: the Zipf token documents of ``bench_bm25.make_corpus`` (the chunk text is those tokens);
- queries: 3-8 corpus-frequency-weighted terms (``bench_bm25.make_queries``) and a vector from
  the same cluster model.

"without query embedding": the retriever gets each query's synthetic vector from a lookup (its
``embed`` stage is ~0 ms). "with query embedding": the same runs, but the real multilingual-e5-small
first embeds the query text (cost paid, result discarded, synthetic vector used), so the figure is
the real end-to-end retrieval cost. The index variants (FLAT, IVF_FLAT with nlist/nprobe,
AUTOINDEX) are built on the same collection one after another; recall@10 of the dense leg is
measured against exact (numpy) cosine top-10.

    python benchmarks/bench_query.py                      # 10k and 100k, ~10 min on 2 cores
    python benchmarks/bench_query.py --sizes 1000000      # the long one (~40 min, ~6 GiB RAM)
    python benchmarks/bench_query.py --real-recall .bench/scifact-dev/milvus.db   # IVF recall on real e5 vectors
    python benchmarks/bench_query.py --milvus-standalone --sizes 100000 1000000    # the server shape (HNSW)
    python benchmarks/bench_query.py --sizes 10000 --reranker PATH               # + a cross-encoder reranker
    python benchmarks/bench_query.py --reranker untrained     # + rag-tune's model shape, untrained (timing only)

``--milvus-standalone`` runs the same retrieval against a Milvus 2.3 standalone server started
locally from the PyPI ``milvus`` package (a test extra; no Docker), i.e. ``configs/milvus-server.yaml``'s
shape, with its HNSW index next to FLAT and IVF_FLAT (which the server, unlike Lite, probes with
``nprobe``). ``--reranker`` adds a row with the reranker on (a local cross-encoder folder, e.g. one
that ``rag-tune`` trained), at the default ``max_candidates``. ``--reranker untrained`` builds the
model ``rag-tune`` starts from (e5-small's first ``tuning.layers`` layers under a fresh scoring
head) without training it: its scores are noise, but its cost per query is the trained model's,
so the latency row needs no tuning run first.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from bench_bm25 import make_corpus, make_queries  # noqa: E402  (benchmarks/, scripts run from there)

from ingest.settings import EmbedderSettings, MilvusSettings  # noqa: E402
from ingest.stores.bm25_index import BM25Index  # noqa: E402
from ingest.stores.milvus_store import MilvusVectorStore  # noqa: E402
from ingest.text_tokenizer import BM25Tokenizer  # noqa: E402
from ingest.types import Chunk  # noqa: E402
from rag_app.config import Settings  # noqa: E402
from rag_app.retrieval.pipeline import HybridRetriever  # noqa: E402

DIM = 384
CLUSTERS = 1024
VOCAB = 100_000
log = logging.getLogger("bench_query")


# ---------------------------------------------------------------------------- synthetic data


def cluster_centres(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    c = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def clustered_vectors(n: int, centres: np.ndarray, seed: int, block: int = 100_000) -> np.ndarray:
    """Unit vectors: a random cluster centre plus Gaussian noise of the same expected norm."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, block):
        m = min(block, n - s)
        v = centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, DIM)).astype(np.float32) / np.sqrt(DIM)
        out[s : s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact_top10(corpus: np.ndarray, queries: np.ndarray, block: int = 200_000) -> list[set[int]]:
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for s in range(0, len(corpus), block):
        sims = queries @ corpus[s : s + block].T
        part = np.argpartition(-sims, 10, axis=1)[:, :10]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, part, 1)], 1)
        best_i = np.concatenate([best_i, part + s], 1)
        keep = np.argsort(-best_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return [set(row.tolist()) for row in best_i]


class LookupQueryEmbedder:
    """Gives the retriever each query's synthetic vector; with ``e5``, pays the real embedding
    cost of the query text first (the result is discarded: the corpus vectors are synthetic)."""

    def __init__(self, vectors: dict[str, np.ndarray], e5: Any | None) -> None:
        self.vectors = vectors
        self.e5 = e5

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if self.e5 is not None:
            self.e5.embed_queries(texts)
        return np.stack([self.vectors[t] for t in texts])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        # Only the threshold's reference passages come here; synthetic space, so random vectors.
        v = np.random.default_rng(7).standard_normal((len(texts), DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------------------- Milvus loading


def load_milvus(uri: str, ids: list[str], docs: list[list[str]], vecs: np.ndarray, rows_per_call: int) -> dict:
    """Fill a fresh collection (FLAT) with the chunks. Up to 10k rows go through the store's own
    ``upsert`` (the ingestion path, 500 rows / 2 MB per call); with ``rows_per_call`` > 0 the
    rest is bulk-inserted ``rows_per_call`` rows per call (the payload per row is ~2 KB)."""
    store = MilvusVectorStore(MilvusSettings(index_type="FLAT"), uri, DIM)
    store.warm_up()
    n = len(ids)
    first = min(n, 10_000) if rows_per_call else n
    t0 = time.perf_counter()
    for s in range(0, first, 1000):
        chunks = [
            Chunk(chunk_id=ids[i], doc_id=f"d{i // 4}", source=f"doc{i // 4}.md", text=" ".join(docs[i]), ordinal=i % 4)
            for i in range(s, min(first, s + 1000))
        ]
        store.upsert(chunks, vecs[s : s + len(chunks)])
    upsert_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for s in range(first, n, rows_per_call or n):
        rows = [
            {
                "chunk_id": ids[i],
                "doc_id": f"d{i // 4}",
                "vector": vecs[i].tolist(),
                "text": " ".join(docs[i]),
                "meta": {"source": f"doc{i // 4}.md", "ordinal": i % 4, "page": None, "section": ""},
            }
            for i in range(s, min(n, s + rows_per_call))
        ]
        store.client.insert(store.settings.collection, rows)
        if (s // rows_per_call) % 50 == 0:
            log.info("  inserted %d/%d rows (%.0f s)", s + len(rows), n, time.perf_counter() - t0)
    insert_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    store.flush()
    flush_s = time.perf_counter() - t2
    count = store.count()
    store.close()
    return {
        "upsert_rows": first,
        "upsert_s": upsert_s,
        "insert_rows": n - first,
        "insert_s": insert_s,
        "flush_s": flush_s,
        "count": count,
    }


def set_index(uri: str, index_type: str, params: dict) -> float:
    """Rebuild the vector index of the collection in place; returns seconds to build + load."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    t = time.perf_counter()
    client.release_collection("chunks")
    client.drop_index("chunks", "vector")
    ip = client.prepare_index_params()
    ip.add_index(field_name="vector", index_type=index_type, metric_type="COSINE", params=params)
    client.create_index("chunks", ip)
    client.load_collection("chunks")
    took = time.perf_counter() - t
    client.close()
    return took


def stop_lite_server(uri: str) -> None:
    """Closing a client leaves the Milvus Lite server process (and the data it holds in memory)
    running until the interpreter exits: stop it before the next size."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def start_standalone(base: Path) -> tuple[Any, str]:
    """Milvus 2.3 standalone (PyPI ``milvus``) in ``base``; returns the server and its URI."""
    import httpx
    from milvus import MilvusServer

    server = MilvusServer(wait_for_started=False)
    server.set_base_dir(str(base))
    server.start()
    deadline = time.monotonic() + 120
    while True:
        if server.server_proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"Milvus standalone did not start: see {base / 'logs' / 'milvus-stderr.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{server.webservice_port}/healthz", timeout=2).text.strip() == "OK":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return server, f"http://127.0.0.1:{server.listen_port}"


def server_rss_mib(server: Any) -> float:
    with open(f"/proc/{server.server_proc.pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


# ---------------------------------------------------------------------------- timing


@dataclass
class Variant:
    name: str
    index_type: str
    index_params: dict
    search_params: dict


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def time_queries(retriever: HybridRetriever, texts: list[str], warm: int = 3) -> dict[str, list[float]]:
    for t in texts[:warm]:  # first queries load the collection segments and the calibration sample
        retriever.run(t)
    stages: dict[str, list[float]] = {"wall": []}
    for t in texts:
        t0 = time.perf_counter()
        res = retriever.run(t)
        stages["wall"].append((time.perf_counter() - t0) * 1000)
        for k, v in res.timings_ms.items():
            stages.setdefault(k, []).append(v)
    return stages


def dense_top10(store: MilvusVectorStore, qvecs: np.ndarray) -> list[list[str]]:
    return [[c.chunk_id for c, _ in store.search(q, 10)[0]] for q in qvecs]


# ---------------------------------------------------------------------------- one size


def run_size(n: int, args: argparse.Namespace, e5: Any | None, out: list[str], server: Any | None = None) -> None:
    say = out.append
    work = Path(args.work_dir) / f"q{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    uri = args.uri or str(work / "milvus.db")
    if args.uri:  # a server keeps the previous size's collection: start from an empty one
        from pymilvus import MilvusClient

        client = MilvusClient(uri=args.uri)
        if client.has_collection("chunks"):
            client.drop_collection("chunks")
        client.close()

    t = time.perf_counter()
    docs = make_corpus(n, VOCAB, seed=0)
    queries = make_queries(docs, args.queries, seed=0, weighted=True)
    centres = cluster_centres(0)
    vecs = clustered_vectors(n, centres, seed=1)
    qvecs = clustered_vectors(len(queries), centres, seed=2)
    ids = [f"c{i:08d}" for i in range(n)]
    gen_s = time.perf_counter() - t
    texts = [" ".join(q) for q in queries]
    # Distinct texts per query (the lookup is by text): suffix a duplicate with its position.
    seen: dict[str, int] = {}
    for i, tx in enumerate(texts):
        if tx in seen:
            texts[i] = f"{tx} w{i}"
        seen[texts[i]] = i
    lookup = dict(zip(texts, qvecs))

    t = time.perf_counter()
    bm25 = BM25Index()
    bm25.add(ids, docs)
    bm25_s = time.perf_counter() - t

    rows_per_call = args.insert_rows if n > 10_000 else 0
    load = load_milvus(uri, ids, docs, vecs, rows_per_call)
    del docs
    gc.collect()

    say(f"\n### {n:,} chunks\n")
    say(
        f"- data: generated in {gen_s:.1f} s; BM25 build {bm25_s:.1f} s; Milvus rows {load['count']:,}: "
        f"{load['upsert_rows']:,} via `MilvusVectorStore.upsert` in {load['upsert_s']:.1f} s "
        f"({load['upsert_rows'] / max(load['upsert_s'], 1e-9):,.0f} rows/s)"
        + (
            f", {load['insert_rows']:,} via `insert` of {rows_per_call} rows/call in {load['insert_s']:.1f} s "
            f"({load['insert_rows'] / max(load['insert_s'], 1e-9):,.0f} rows/s)"
            if load["insert_rows"]
            else ""
        )
        + f"; flush {load['flush_s']:.1f} s"
        + (f"; Milvus server RSS {server_rss_mib(server):,.0f} MiB" if server is not None else "")
    )
    truth = exact_top10(vecs, qvecs)
    del vecs
    gc.collect()

    variants = [Variant("FLAT", "FLAT", {}, {})]
    for nlist, nprobe in args.ivf:
        variants.append(Variant(f"IVF_FLAT nlist={nlist} nprobe={nprobe}", "IVF_FLAT", {"nlist": nlist}, {"nprobe": nprobe}))
    if args.autoindex:
        variants.append(Variant("AUTOINDEX", "AUTOINDEX", {}, {}))
    for m, efc, ef in args.hnsw:
        variants.append(Variant(f"HNSW M={m} efConstruction={efc} ef={ef}", "HNSW", {"M": m, "efConstruction": efc}, {"ef": ef}))

    settings = Settings(data_dir=work)
    tokenizer = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords)
    say("")
    say(
        "| index | build+load s | recall@10 | total p50 ms | total p95 ms | dense p50 | bm25 p50 | merge p50 |"
        " with e5 query embedding p50 ms | p95 ms | embed p50 ms | load avg |"
    )
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    built_for: tuple[str, str] | None = ("FLAT", "{}")
    for v in variants:
        build_s = 0.0
        if built_for != (v.index_type, repr(v.index_params)):
            build_s = set_index(uri, v.index_type, v.index_params)
            built_for = (v.index_type, repr(v.index_params))
        store = MilvusVectorStore(
            MilvusSettings(index_type=v.index_type, index_params=v.index_params, search_params=v.search_params), uri, DIM
        )
        store.warm_up()
        got = dense_top10(store, qvecs[: args.recall_queries])
        recall = float(
            np.mean([len(truth[i] & {int(c[1:]) for c in got[i]}) / 10 for i in range(len(got))])
        )
        retriever = HybridRetriever(settings.retrieval, LookupQueryEmbedder(lookup, None), store, bm25, tokenizer)
        stages = time_queries(retriever, texts)
        row = [
            v.name,
            f"{build_s:.1f}" if build_s else "–",
            f"{recall:.3f}",
            f"{pct(stages['wall'], 50):.1f}",
            f"{pct(stages['wall'], 95):.1f}",
            f"{pct(stages['dense'], 50):.1f}",
            f"{pct(stages['bm25'], 50):.1f}",
            f"{pct(stages['merge'], 50):.1f}",
        ]
        if e5 is not None and not args.no_embed:
            with_e5 = HybridRetriever(settings.retrieval, LookupQueryEmbedder(lookup, e5), store, bm25, tokenizer)
            n_e5 = min(len(texts), args.embed_queries)
            st2 = time_queries(with_e5, texts[:n_e5])
            row += [f"{pct(st2['wall'], 50):.1f}", f"{pct(st2['wall'], 95):.1f}", f"{pct(st2['embed'], 50):.1f}"]
        else:
            row += ["–", "–", "–"]
        row.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
        say("| " + " | ".join(row) + " |")
        log.info("%s", out[-1])
        if args.reranker and v is variants[0]:
            say(reranker_row(v.name, settings, lookup, e5, store, bm25, tokenizer, texts, args))
            log.info("%s", out[-1])
        store.close()
    say("")
    say(
        f"- {len(texts)} queries timed per row after 3 warm-up queries (with e5: the first "
        f"{min(len(texts), args.embed_queries)}); recall@10 of the dense leg alone on "
        f"{args.recall_queries} queries vs exact cosine top-10; BM25 index: {bm25.stats()}"
    )
    if args.reranker:
        say(
            "- the reranker row: the first variant's retrieval with `retrieval.reranker` on "
            f"({args.reranker}, max_candidates {settings.retrieval.reranker.max_candidates}, max_tokens "
            f"{settings.retrieval.reranker.max_tokens}); its merge column holds the rerank stage's p50 instead; "
            f"{min(len(texts), args.embed_queries)} queries"
        )
    del bm25
    gc.collect()
    if not args.uri:
        stop_lite_server(uri)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def reranker_row(
    name: str, settings: Settings, lookup: dict, e5: Any | None, store: MilvusVectorStore, bm25: BM25Index,
    tokenizer: BM25Tokenizer, texts: list[str], args: argparse.Namespace,
) -> str:
    """One table row: the same retrieval with the cross-encoder reranker switched on."""
    from rag_app.retrieval.rerank import CrossEncoderReranker

    rs = settings.retrieval.model_copy(
        update={"reranker": settings.retrieval.reranker.model_copy(update={"enabled": True, "model": args.reranker})}
    )
    reranker = CrossEncoderReranker(rs.reranker)
    reranker.warm_up()
    n = min(len(texts), args.embed_queries)
    without_e5 = time_queries(HybridRetriever(rs, LookupQueryEmbedder(lookup, None), store, bm25, tokenizer, reranker), texts[:n])
    cells = [
        f"{name} **+ reranker**", "–", "–",
        f"{pct(without_e5['wall'], 50):.1f}", f"{pct(without_e5['wall'], 95):.1f}", "–", "–",
        f"{pct(without_e5['rerank'], 50):.1f} (rerank)" if "rerank" in without_e5 else "–",
    ]
    if e5 is not None and not args.no_embed:
        st2 = time_queries(HybridRetriever(rs, LookupQueryEmbedder(lookup, e5), store, bm25, tokenizer, reranker), texts[:n])
        cells += [f"{pct(st2['wall'], 50):.1f}", f"{pct(st2['wall'], 95):.1f}", f"{pct(st2['embed'], 50):.1f}"]
    else:
        cells += ["–", "–", "–"]
    cells.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
    return "| " + " | ".join(cells) + " |"


def build_untrained_reranker(base_model: str, out_dir: Path) -> str:
    """rag-tune's starting model (the embedder's first ``tuning.layers`` layers + a one-logit head),
    saved untrained: the same cost per query as a tuned reranker of the default shape."""
    from rag_app.config import TuningSettings
    from rag_app.tuning.trainer import build_cross_encoder

    layers = TuningSettings().layers
    model, tokenizer = build_cross_encoder(base_model, layers)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    logging.info("untrained reranker (%s, first %s layers) saved to %s: timing only", base_model, layers, out_dir)
    return str(out_dir)


# ---------------------------------------------------------------------------- real vectors


def real_recall(db: str, args: argparse.Namespace, out: list[str]) -> None:
    """Dense recall@10 of IVF_FLAT variants vs FLAT on real stored e5 vectors (a copy of ``db``);
    queries are the stored chunk vectors themselves (a chunk's neighbours), excluding self-hits."""
    from pymilvus import MilvusClient

    work = Path(args.work_dir) / "real"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy = work / "milvus.db"
    shutil.copy(db, copy)
    uri = str(copy)
    client = MilvusClient(uri)
    rows: list[dict] = []
    it = client.query_iterator("chunks", batch_size=5000, filter="", output_fields=["chunk_id", "vector"])
    while page := it.next():
        rows.extend(page)
    it.close()
    client.close()
    ids = [r["chunk_id"] for r in rows]
    vecs = np.asarray([r["vector"] for r in rows], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rng = np.random.default_rng(3)
    pick = rng.choice(len(ids), size=min(args.recall_queries, len(ids)), replace=False)
    sims = vecs[pick] @ vecs.T
    truth = [set(np.argsort(-s)[:11].tolist()) - {int(p)} for s, p in zip(sims, pick)]
    pos = {c: i for i, c in enumerate(ids)}
    out.append(f"\n### IVF_FLAT recall on real e5 vectors ({len(ids):,} chunks of {Path(db).parent.name})\n")
    out.append("| index | recall@10 vs exact | dense search p50 ms |")
    out.append("|---|---:|---:|")
    for nlist, nprobe in [(0, 0), *args.ivf]:
        if nlist:
            set_index(uri, "IVF_FLAT", {"nlist": nlist})
        name = f"IVF_FLAT nlist={nlist} nprobe={nprobe}" if nlist else "FLAT"
        store = MilvusVectorStore(
            MilvusSettings(
                index_type="IVF_FLAT" if nlist else "FLAT",
                index_params={"nlist": nlist} if nlist else {},
                search_params={"nprobe": nprobe} if nprobe else {},
            ),
            uri,
            DIM,
        )
        store.warm_up()
        lat, rec = [], []
        for q, p, tr in zip(vecs[pick], pick, truth):
            t = time.perf_counter()
            hits = store.search(q, 11)[0]
            lat.append((time.perf_counter() - t) * 1000)
            got = {pos[c.chunk_id] for c, _ in hits} - {int(p)}
            rec.append(len(got & tr) / max(len(tr), 1))
        out.append(f"| {name} | {np.mean(rec):.3f} | {pct(lat, 50):.1f} |")
        store.close()
    stop_lite_server(uri)
    shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--embed-queries", type=int, default=100, help="queries timed with the real e5 query embedding")
    ap.add_argument("--recall-queries", type=int, default=100)
    ap.add_argument(
        "--ivf", type=lambda s: tuple(int(x) for x in s.split(":")), nargs="*", default=[(1024, 16)],
        help="IVF_FLAT variants as nlist:nprobe (none: FLAT only)",
    )
    ap.add_argument("--autoindex", action="store_true", help="also time AUTOINDEX")
    ap.add_argument(
        "--hnsw", type=lambda s: tuple(int(x) for x in s.split(":")), nargs="*", default=None,
        help="HNSW variants as M:efConstruction:ef (a server only; default with --milvus-standalone: "
        "configs/milvus-server.yaml's 16:200:128)",
    )
    ap.add_argument("--milvus-standalone", action="store_true", help="against a local Milvus 2.3 standalone server")
    ap.add_argument("--uri", help="against this running Milvus server instead (http://host:port)")
    ap.add_argument("--reranker", metavar="MODEL_DIR", help="also time the first index with this cross-encoder on")
    ap.add_argument("--insert-rows", type=int, default=2000, help="rows per bulk insert call beyond 10k")
    ap.add_argument("--no-embed", action="store_true", help="skip the runs with the real e5 query embedding")
    ap.add_argument("--real-recall", metavar="MILVUS_DB", help="also measure IVF recall on a copy of this Lite db")
    ap.add_argument("--work-dir", default=str(REPO / ".bench" / "query"))
    ap.add_argument("--models-dir", default=str(REPO / "data" / "models"))
    ap.add_argument("--keep", action="store_true", help="keep the generated Milvus files")
    args = ap.parse_args()
    if args.hnsw is None:
        args.hnsw = [(16, 200, 128)] if (args.milvus_standalone or args.uri) else []
    if args.hnsw and not (args.milvus_standalone or args.uri):
        ap.error("HNSW needs a Milvus server (--milvus-standalone or --uri): Milvus Lite refuses it")
    if args.reranker == "untrained" and args.no_embed:
        ap.error("--reranker untrained is built from the e5 model: drop --no-embed")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("ingest").setLevel(logging.WARNING)

    import pymilvus

    e5 = None
    if not args.no_embed:
        from ingest.embedding import Embedder

        e5 = Embedder(EmbedderSettings(cache_dir=args.models_dir))
        e5.warm_up()
        if args.reranker == "untrained":
            args.reranker = build_untrained_reranker(e5.model_path, Path(args.work_dir) / "untrained-reranker")
    out: list[str] = []
    import milvus_lite

    out.append(f"# Query latency: sizes {', '.join(f'{n:,}' for n in args.sizes)}; {args.queries} queries")
    out.append(
        f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, "
        f"milvus-lite {milvus_lite.__version__}, pymilvus {pymilvus.__version__}, numpy {np.__version__}"
    )
    out.append(f"# command: python benchmarks/bench_query.py {' '.join(sys.argv[1:])}")
    server = None
    if args.milvus_standalone:
        import milvus

        server, args.uri = start_standalone(Path(args.work_dir) / "standalone")
        out.append(f"# Milvus standalone {milvus.__version__} (PyPI `milvus`) at {args.uri}")
    elif args.uri:
        out.append(f"# Milvus server at {args.uri}")
    try:
        for n in args.sizes:
            t = time.perf_counter()
            run_size(n, args, e5, out, server)
            out.append(f"- size {n:,} done in {time.perf_counter() - t:.0f} s")
            print("\n".join(out), flush=True)
            out.clear()
    finally:
        if server is not None:
            server.stop()
    if args.real_recall:
        real_recall(args.real_recall, args, out)
        print("\n".join(out), flush=True)


if __name__ == "__main__":
    main()
