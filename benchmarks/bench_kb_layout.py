"""Several knowledge bases (KBs) in one Milvus: one collection per KB, or one shared collection with a
``kb`` field (a partition key on a server) that every search filters on (``kb == "..."``).

Synthetic data, N KBs of C chunks each (default: 2 x 10,000 and 10 x 3,000), stored with the app's
chunk schema (``ingest.stores.milvus_store``: ``chunk_id``, ``doc_id``, 384-d ``vector`` with the
default ``milvus.index_type``/``metric`` (FLAT, COSINE), ``text``, ``meta`` and, as with
``bm25.backend: milvus``, the ``keywords`` field with its whitespace analyzer, the BM25 function and
the sparse index with the default k1/b), written by ``upsert`` in the app's batches:

- vectors: random unit vectors, one Gaussian cloud per KB (a KB-specific offset), queries are KB A's
  vectors plus noise;
- keywords: "documents" of words drawn from a Zipf(1.07) vocabulary of 5,000 words. KB A (``kb0``)
  ranks the words one way and has 60-200 tokens per chunk; every other KB ranks them by its own
  random permutation and has 150-400 tokens per chunk (other idf and avgdl). Queries: 3-5 tokens of
  a random KB A chunk.

Measured, per N: dense and BM25 search latency (top 10, one query per call, as the app searches) for
KB A's queries in KB A's own collection vs the shared collection filtered to KB A (and, for the
isolation note, unfiltered); whether KB A's BM25 top 10 and scores move when the other KBs are
written (and again when they are deleted); the cost of removing a whole KB (``drop_collection`` vs
``delete(filter='kb == "x"')``) and what is left after it (rows, the Milvus Lite file, the server
process's memory); the time to create a KB's collection (a shared collection needs nothing).

Milvus Lite 2.5.1 (the embedded default) accepts a partition-key field but then refuses every filter
expression on that collection (milvus-io/milvus#43163, milvus-io/milvus-lite#245): the script checks
that first and reports each operation's outcome; the shared layout measured on Lite is therefore the
closest thing Lite can run, a plain VARCHAR ``kb`` field with the same filter. ``--milvus-standalone``
adds the dense-only comparison with a real partition key on a local Milvus 2.3 standalone server (the
PyPI ``milvus`` package, a test extra; 2.3 has no BM25 function, so no full-text leg there). Milvus
2.3.5's ``upsert`` routes partition-key rows to the wrong partition (milvus-io/milvus#30607, fixed by
#30772), so filtered searches miss most of a KB: the script shows it, then writes both layouts there
with ``insert``.

    python benchmarks/bench_kb_layout.py                       # Lite, N = 2 and 10, ~2 min on 2 cores
    python benchmarks/bench_kb_layout.py --kbs 2 --chunks 2000 # a quick look
    python benchmarks/bench_kb_layout.py --milvus-standalone   # + Milvus 2.3 server, real partition key (~5 min)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from ingest.settings import BM25Settings, MilvusSettings  # noqa: E402
from ingest.stores.milvus_store import KEYWORDS_FIELD, SPARSE_FIELD, MilvusVectorStore, _batches  # noqa: E402

DIM = 384
TOP = 10
VOCAB = 5000
ZIPF = 1.07
ID_LEN = 64
TEXT_LEN = 65_535
SHARED = "chunks"  # the shared collection (the app's default collection name)
DEFAULT_CHUNKS = {2: 10_000, 10: 3_000}

logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # the expected errors are reported below


def _coll(kb: str) -> str:
    return f"kb_{kb}"


def _kb_filter(kb: str) -> str:
    return f'kb == "{kb}"'


def _pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) * 1000 if xs else float("nan")


def _err(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------------- data


def make_kb(index: int, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """KB ``kb{index}``: n unit vectors around a KB-specific offset, n Zipf keyword documents."""
    centre = rng.standard_normal(DIM).astype(np.float32)
    vec = rng.standard_normal((n, DIM)).astype(np.float32) + 0.25 * centre
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
    p /= p.sum()
    order = np.arange(VOCAB) if index == 0 else rng.permutation(VOCAB)  # word of each frequency rank
    lo, hi = (60, 200) if index == 0 else (150, 400)
    lens = rng.integers(lo, hi + 1, n)
    words = np.array([f"w{i}" for i in range(VOCAB)])[order[rng.choice(VOCAB, size=int(lens.sum()), p=p)]]
    flat = words.tolist()
    docs, pos = [], 0
    for length in lens.tolist():
        docs.append(" ".join(flat[pos : pos + length]))
        pos += length
    return {"name": f"kb{index}", "vec": vec, "kw": docs, "tokens": int(lens.sum())}


def make_queries(kb: dict[str, Any], n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """n dense queries (KB A's vectors + noise) and n keyword queries (3-5 tokens of a KB A chunk)."""
    rows = rng.choice(len(kb["vec"]), size=n, replace=False)
    dense = kb["vec"][rows] + 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    words = []
    for r in rng.choice(len(kb["kw"]), size=n, replace=False).tolist():
        tokens = kb["kw"][r].split()
        words.append(" ".join(tokens[i] for i in rng.choice(len(tokens), size=int(rng.integers(3, 6)), replace=False)))
    return dense, words


# ---------------------------------------------------------------------------- Milvus


def schema_and_index(
    client: Any, *, kb_field: bool, partition_key: bool, full_text: BM25Settings | None
) -> tuple[Any, Any]:
    """The app's chunk schema and indexes (``MilvusVectorStore._ensure_collection``), plus ``kb``."""
    from pymilvus import DataType, MilvusClient

    settings = MilvusSettings()
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=ID_LEN)
    if kb_field:
        schema.add_field("kb", DataType.VARCHAR, max_length=ID_LEN, is_partition_key=partition_key)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=ID_LEN)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_LEN)
    schema.add_field("meta", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index(
        field_name="vector", index_type=settings.index_type, metric_type=settings.metric, params=settings.index_params
    )
    if full_text is not None:
        MilvusVectorStore._add_full_text(schema, index, full_text)
    return schema, index


def create(client: Any, name: str, **kw: Any) -> float:
    """Create (and load) one collection as the app does; returns the seconds it took."""
    schema, index = schema_and_index(client, **kw)
    t = time.perf_counter()
    client.create_collection(name, schema=schema, index_params=index)
    return time.perf_counter() - t


def upsert_kb(
    client: Any,
    coll: str,
    kb: dict[str, Any],
    *,
    kb_field: bool,
    full_text: bool,
    step: int = 500,
    write: str = "upsert",
) -> float:
    """Write a KB's chunks in the app's upsert batches (``write``: "insert" instead); returns the seconds."""
    name, vec, kw = kb["name"], kb["vec"], kb["kw"]
    t = time.perf_counter()
    for s in range(0, len(vec), step):
        rows = []
        for j, v in zip(range(s, s + step), vec[s : s + step].tolist()):
            row = {
                "chunk_id": f"{name}-{j:07d}",
                "doc_id": f"{name}-doc{j // 8:06d}",
                "vector": v,
                "text": kw[j],
                "meta": {"source": f"{name}/doc{j // 8}.txt", "ordinal": j % 8, "page": None, "section": ""},
            }
            if kb_field:
                row["kb"] = name
            if full_text:
                row[KEYWORDS_FIELD] = kw[j]
            rows.append(row)
        for batch in _batches(rows):
            getattr(client, write)(coll, batch)
    return time.perf_counter() - t


def flush(client: Any, coll: str) -> None:
    with contextlib.suppress(Exception):  # Lite: a no-op in some versions
        client.flush(coll)


def count(client: Any, coll: str, flt: str = "") -> int:
    # Strong: a server (default Bounded) may not show the last writes or deletes yet; Lite ignores it
    return int(client.query(coll, filter=flt, output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"])


def dense_search(client: Any, coll: str, q: np.ndarray, flt: str | None) -> list[tuple[str, float]]:
    settings = MilvusSettings()
    kw = {"filter": flt} if flt else {}
    res = client.search(
        coll,
        data=[q.tolist()],
        anns_field="vector",
        limit=TOP,
        output_fields=["doc_id", "text", "meta"],
        search_params={"metric_type": settings.metric, "params": settings.search_params},
        **kw,
    )
    return [(str(h["id"]), float(h["distance"])) for h in res[0]]


def bm25_search(client: Any, coll: str, q: str, flt: str | None) -> list[tuple[str, float]]:
    kw = {"filter": flt} if flt else {}
    res = client.search(coll, data=[q], anns_field=SPARSE_FIELD, limit=TOP, search_params={"metric_type": "BM25"}, **kw)
    return [(str(h["id"]), float(h["distance"])) for h in res[0]]


def timed(
    fn: Callable[[Any], list[tuple[str, float]]], queries: Sequence[Any], warm: int = 5
) -> tuple[list[float], list[list[tuple[str, float]]]]:
    for q in queries[:warm]:
        fn(q)
    lat, hits = [], []
    for q in queries:
        t = time.perf_counter()
        hits.append(fn(q))
        lat.append(time.perf_counter() - t)
    return lat, hits


def db_bytes(db: Path) -> int:
    """The Milvus Lite file and whatever it keeps beside it (``name*``, ``.name*``)."""
    return sum(p.stat().st_size for pat in (f"{db.name}*", f".{db.name}*") for p in db.parent.glob(pat) if p.is_file())


def server_rss_mib(db: Path) -> float:
    """Resident memory of the Milvus Lite server process serving ``db`` (NaN if not found)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    for proc in psutil.Process().children(recursive=True):
        try:
            if str(db) in " ".join(proc.cmdline()):
                return proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return float("nan")


# ---------------------------------------------------------------------------- comparisons


def drift(before: list[list[tuple[str, float]]], after: list[list[tuple[str, float]]]) -> dict[str, float]:
    """How KB A's BM25 top 10 moved: overlap, identical lists, relative score change of the hits
    in both (median, max) and of the top hit (mean, signed)."""
    overlap, same, rel, top1 = [], [], [], []
    for b, a in zip(before, after):
        if not b:
            continue
        overlap.append(len({c for c, _ in b} & {c for c, _ in a}) / len(b))
        same.append([c for c, _ in b] == [c for c, _ in a])
        sa = dict(a)
        rel += [abs(sa[c] - s) / s for c, s in b if c in sa and s > 0]
        if a:
            top1.append((a[0][1] - b[0][1]) / b[0][1])
    return {
        "overlap": float(np.mean(overlap)),
        "same": float(np.mean(same)),
        "rel_med": float(np.median(rel)) if rel else float("nan"),
        "rel_max": max(rel) if rel else float("nan"),
        "top1": float(np.mean(top1)) if top1 else float("nan"),
        "queries": len(overlap),
    }


def agree(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> float:
    """Share of queries whose top-10 id lists are identical."""
    return float(np.mean([[c for c, _ in x] == [c for c, _ in y] for x, y in zip(a, b)]))


def foreign(hits: list[list[tuple[str, float]]], kb: str) -> float:
    """Share of hits that belong to another KB than ``kb``."""
    flat = [c for per in hits for c, _ in per]
    return sum(not c.startswith(kb + "-") for c in flat) / max(len(flat), 1)


# ---------------------------------------------------------------------------- Lite: partition key probe


def probe_partition_key(work: Path, bm25: BM25Settings, rng: np.random.Generator) -> list[tuple[str, str]]:
    """The shared layout as specified (``kb`` is the partition key) on Milvus Lite: what works."""
    from pymilvus import MilvusClient

    db = work / "partition-key.db"
    client = MilvusClient(str(db))
    out: list[tuple[str, str]] = []

    def attempt(what: str, fn: Callable[[], Any], show: Callable[[Any], str] = lambda r: "") -> Any:
        t = time.perf_counter()
        try:
            res = fn()
        except Exception as exc:
            out.append((what, f"ERROR: {_err(exc)}"))
            return None
        extra = show(res)
        out.append((what, f"ok, {(time.perf_counter() - t) * 1000:.0f} ms" + (f"; {extra}" if extra else "")))
        return res

    try:
        if (
            attempt(
                "create_collection (app schema + full text, `kb` VARCHAR partition key)",
                lambda: create(client, SHARED, kb_field=True, partition_key=True, full_text=bm25),
            )
            is None
        ):
            return out
        desc = client.describe_collection(SHARED)
        out.append(
            (
                "describe_collection",
                f"partition key field: {[f['name'] for f in desc['fields'] if f.get('is_partition_key')]},"
                f" num_partitions {desc.get('num_partitions')}",
            )
        )
        kbs = [make_kb(i, 300, rng) for i in range(2)]
        attempt(
            "upsert 2 KBs x 300 chunks",
            lambda: [upsert_kb(client, SHARED, kb, kb_field=True, full_text=True) for kb in kbs],
        )
        attempt("count(*) without filter", lambda: count(client, SHARED), lambda r: f"{r} rows")
        q = kbs[0]["vec"][0]
        attempt('dense search, filter kb == "kb0"', lambda: dense_search(client, SHARED, q, _kb_filter("kb0")))
        attempt(
            "dense search, no filter",
            lambda: dense_search(client, SHARED, q, None),
            lambda r: f"{sum(not c.startswith('kb0-') for c, _ in r)}/{len(r)} hits from kb1",
        )
        text = " ".join(kbs[0]["kw"][0].split()[:3])
        attempt('BM25 search, filter kb == "kb0"', lambda: bm25_search(client, SHARED, text, _kb_filter("kb0")))
        attempt("BM25 search, no filter", lambda: bm25_search(client, SHARED, text, None))
        attempt(
            "BM25 search, filter chunk_id in [...] (the app's get_scores)",
            lambda: bm25_search(client, SHARED, text, 'chunk_id in ["kb0-0000000", "kb0-0000001"]'),
        )
        attempt('query count(*), filter kb == "kb1"', lambda: count(client, SHARED, _kb_filter("kb1")))
        attempt("delete(filter='kb == \"kb1\"')", lambda: client.delete(SHARED, filter=_kb_filter("kb1")))
        attempt("delete(ids=[3 ids of kb1])", lambda: client.delete(SHARED, ids=[f"kb1-{j:07d}" for j in range(3)]))
        attempt("count(*) after the deletes", lambda: count(client, SHARED), lambda r: f"{r} rows")
        attempt("list_partitions", lambda: client.list_partitions(SHARED), lambda r: f"{len(r)} partitions")
    finally:
        client.close()
    return out


def probe_server_writes(uri: str, rng: np.random.Generator, n: int = 1000) -> list[tuple[str, int, int, Any]]:
    """On a server, whether rows written by ``upsert`` / ``insert`` land in their partition-key partition:
    (write, rows of KB A the filter finds, rows written, partitions)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    kbs = [make_kb(i, n, rng) for i in range(2)]
    out = []
    try:
        for write in ("upsert", "insert"):
            name = f"probe_{write}"
            if client.has_collection(name):
                client.drop_collection(name)
            create(client, name, kb_field=True, partition_key=True, full_text=None)
            for kb in kbs:
                upsert_kb(client, name, kb, kb_field=True, full_text=False, write=write)
            flush(client, name)
            parts = client.describe_collection(name).get("num_partitions")
            out.append((write, count(client, name, _kb_filter("kb0")), n, parts))
            client.drop_collection(name)
    finally:
        client.close()
    return out


# ---------------------------------------------------------------------------- one N


def run_n(
    n_kbs: int,
    per_kb: int,
    args: argparse.Namespace,
    work: Path,
    bm25: BM25Settings | None,
    uri: str | None = None,
    partition_key: bool = False,
    write: str = "upsert",
) -> dict[str, Any]:
    """Both layouts for N KBs. Lite: one file (and server process) per layout; ``uri``: one server."""
    from pymilvus import MilvusClient

    rng = np.random.default_rng(args.seed + n_kbs)
    t = time.perf_counter()
    kbs = [make_kb(i, per_kb, rng) for i in range(n_kbs)]
    a = kbs[0]
    dq, kq = make_queries(a, args.queries, rng)
    gen_s = time.perf_counter() - t
    full = bm25 is not None
    dbs: dict[str, Path | None] = {}
    clients: dict[str, Any] = {}
    for layout in ("per_kb", "shared"):
        if uri is None:
            dbs[layout] = work / f"n{n_kbs}-{layout}.db"
            clients[layout] = MilvusClient(str(dbs[layout]))
        else:
            dbs[layout] = None
            clients[layout] = MilvusClient(uri=uri)
            for name in [SHARED] + [_coll(kb["name"]) for kb in kbs]:
                if clients[layout].has_collection(name):
                    clients[layout].drop_collection(name)
    pc, sc = clients["per_kb"], clients["shared"]
    r: dict[str, Any] = {
        "n": n_kbs,
        "per_kb": per_kb,
        "gen_s": gen_s,
        "tokens_a": a["tokens"] / per_kb,
        "tokens_other": (sum(kb["tokens"] for kb in kbs[1:]) / (per_kb * (n_kbs - 1))) if n_kbs > 1 else 0,
    }
    try:
        # create: every KB's collection vs the one shared collection
        r["create_per_kb"] = [
            create(pc, _coll(kb["name"]), kb_field=False, partition_key=False, full_text=bm25) for kb in kbs
        ]
        r["create_shared"] = create(sc, SHARED, kb_field=True, partition_key=partition_key, full_text=bm25)
        r["create_dense_only"] = create(pc, "dense_only", kb_field=False, partition_key=False, full_text=None)
        pc.drop_collection("dense_only")
        # KB A alone, then the others
        up = {
            "per_kb": upsert_kb(pc, _coll("kb0"), a, kb_field=False, full_text=full, write=write),
            "shared": upsert_kb(sc, SHARED, a, kb_field=True, full_text=full, write=write),
        }
        flush(pc, _coll("kb0"))
        flush(sc, SHARED)
        nd = args.drift_queries
        if full:
            r["bm25_before"] = {
                "per_kb": [bm25_search(pc, _coll("kb0"), q, None) for q in kq[:nd]],
                "shared": [bm25_search(sc, SHARED, q, _kb_filter("kb0")) for q in kq[:nd]],
            }
        for kb in kbs[1:]:
            up["per_kb"] += upsert_kb(pc, _coll(kb["name"]), kb, kb_field=False, full_text=full, write=write)
            up["shared"] += upsert_kb(sc, SHARED, kb, kb_field=True, full_text=full, write=write)
        for kb in kbs:
            flush(pc, _coll(kb["name"]))
        flush(sc, SHARED)
        r["upsert_s"] = up
        r["rows"] = {"per_kb": sum(count(pc, _coll(kb["name"])) for kb in kbs), "shared": count(sc, SHARED)}
        r["bytes_loaded"] = {k: db_bytes(v) if v else None for k, v in dbs.items()}
        r["rss_loaded"] = {k: server_rss_mib(v) if v else float("nan") for k, v in dbs.items()}
        if full:
            r["bm25_after"] = {
                "per_kb": [bm25_search(pc, _coll("kb0"), q, None) for q in kq[:nd]],
                "shared": [bm25_search(sc, SHARED, q, _kb_filter("kb0")) for q in kq[:nd]],
            }

        # latency, KB A's queries
        dense: dict[str, Any] = {}
        dense["per_kb"] = timed(lambda q: dense_search(pc, _coll("kb0"), q, None), dq)
        dense["shared"] = timed(lambda q: dense_search(sc, SHARED, q, _kb_filter("kb0")), dq)
        dense["unfiltered"] = timed(lambda q: dense_search(sc, SHARED, q, None), dq)
        r["dense"] = dense
        if full:
            kw: dict[str, Any] = {}
            kw["per_kb"] = timed(lambda q: bm25_search(pc, _coll("kb0"), q, None), kq)
            kw["shared"] = timed(lambda q: bm25_search(sc, SHARED, q, _kb_filter("kb0")), kq)
            kw["unfiltered"] = timed(lambda q: bm25_search(sc, SHARED, q, None), kq)
            r["bm25"] = kw

        # remove every KB but A, one at a time
        drops, deletes = [], []
        for kb in kbs[1:]:
            t = time.perf_counter()
            pc.drop_collection(_coll(kb["name"]))
            drops.append(time.perf_counter() - t)
            t = time.perf_counter()
            sc.delete(SHARED, filter=_kb_filter(kb["name"]))
            deletes.append(time.perf_counter() - t)
        t = time.perf_counter()
        flush(sc, SHARED)
        r["delete_flush_s"] = time.perf_counter() - t
        r["drops"], r["deletes"] = drops, deletes
        r["after_delete"] = {
            "per_kb_collections": len([c for c in pc.list_collections() if c.startswith("kb_")]),
            "per_kb_rows": sum(count(pc, c) for c in pc.list_collections() if c.startswith("kb_")),
            "shared_rows": count(sc, SHARED),
            "shared_deleted_kb_rows": count(sc, SHARED, 'kb != "kb0"'),
        }
        r["bytes_deleted"] = {k: db_bytes(v) if v else None for k, v in dbs.items()}
        r["rss_deleted"] = {k: server_rss_mib(v) if v else float("nan") for k, v in dbs.items()}
        if full:
            r["bm25_deleted"] = {
                "per_kb": [bm25_search(pc, _coll("kb0"), q, None) for q in kq[:nd]],
                "shared": [bm25_search(sc, SHARED, q, _kb_filter("kb0")) for q in kq[:nd]],
            }
    finally:
        for c in clients.values():
            c.close()
    return r


# ---------------------------------------------------------------------------- report


def _mib(x: float) -> str:
    return "n/a" if x != x else f"{x:.0f}"  # NaN: not measured


def report(results: list[dict[str, Any]], full: bool, shared_label: str, write: str = "upsert") -> None:
    mib = 2**20
    print("\n## Setup\n")
    print(
        f"| KBs | chunks per KB | rows | tokens per chunk, KB A / others | {write} s, per-KB / shared |"
        " Lite file MiB, per-KB / shared | Lite server RSS MiB, per-KB / shared |"
    )
    print("|---:|---:|---:|---|---|---|---|")
    for r in results:
        b, rs, up = r["bytes_loaded"], r["rss_loaded"], r["upsert_s"]
        files = f"{b['per_kb'] / mib:.1f} / {b['shared'] / mib:.1f}" if b["per_kb"] is not None else "n/a"
        print(
            f"| {r['n']} | {r['per_kb']:,} | {r['rows']['per_kb']:,} / {r['rows']['shared']:,} |"
            f" {r['tokens_a']:.0f} / {r['tokens_other']:.0f} | {up['per_kb']:.1f} / {up['shared']:.1f} | {files} |"
            f" {_mib(rs['per_kb'])} / {_mib(rs['shared'])} |"
        )

    legs = [("dense", "Dense search (FLAT, COSINE), top 10, KB A's queries")]
    if full:
        legs.append(("bm25", "Full-text (BM25 function) search, top 10, KB A's queries"))
    for key, title in legs:
        print(f"\n## {title}, ms per query\n")
        print("| KBs | layout | rows searched | p50 | p95 | mean | same top 10 as per-KB | hits from other KBs |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            d = r[key]
            rows = {"per_kb": r["per_kb"], "shared": r["rows"]["shared"], "unfiltered": r["rows"]["shared"]}
            labels = {
                "per_kb": "collection per KB",
                "shared": f'{shared_label}, filter `kb == "kb0"`',
                "unfiltered": f"{shared_label}, filter forgotten",
            }
            for lay in ("per_kb", "shared", "unfiltered"):
                lat, hits = d[lay]
                print(
                    f"| {r['n']} | {labels[lay]} | {rows[lay]:,} | {_pct(lat, 50):.2f} | {_pct(lat, 95):.2f} |"
                    f" {np.mean(lat) * 1000:.2f} | {agree(d['per_kb'][1], hits):.0%} | {foreign(hits, 'kb0'):.0%} |"
                )

    if full:
        print("\n## BM25: KB A's top 10 before / after the other KBs are written (and after they are deleted)\n")
        print(
            "| KBs | layout | compared | queries | mean top-10 overlap | identical top 10 |"
            " median \\|score change\\| | max | mean top-1 score change |"
        )
        print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
        for r in results:
            others = (r["n"] - 1) * r["per_kb"]
            for lay, label in (("per_kb", "collection per KB"), ("shared", shared_label)):
                for stage, desc in (
                    ("bm25_after", f"KB A alone vs + {others:,} rows of other KBs"),
                    ("bm25_deleted", "KB A alone vs others written, then deleted"),
                ):
                    d = drift(r["bm25_before"][lay], r[stage][lay])
                    print(
                        f"| {r['n']} | {label} | {desc} | {d['queries']} | {d['overlap']:.3f} | {d['same']:.0%} |"
                        f" {d['rel_med']:.1%} | {d['rel_max']:.1%} | {d['top1']:+.1%} |"
                    )

    print("\n## Removing a KB (every KB but A, one at a time)\n")
    print(
        "| KBs | layout | operation | per KB: median ms | max ms | KB rows left | rows left in all |"
        " Lite file MiB before -> after | Lite server RSS MiB before -> after |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---|---|")
    for r in results:
        ad, b0, b1, m0, m1 = r["after_delete"], r["bytes_loaded"], r["bytes_deleted"], r["rss_loaded"], r["rss_deleted"]
        for lay, op, times, left, total in (
            (
                "per_kb",
                "`drop_collection`",
                r["drops"],
                f"{r['n'] - ad['per_kb_collections']} of {r['n'] - 1} collections gone",
                ad["per_kb_rows"],
            ),
            (
                "shared",
                "`delete(filter='kb == \"x\"')`",
                r["deletes"],
                f"{ad['shared_deleted_kb_rows']:,}",
                ad["shared_rows"],
            ),
        ):
            files = f"{b0[lay] / mib:.1f} -> {b1[lay] / mib:.1f}" if b0[lay] is not None else "n/a"
            label = "collection per KB" if lay == "per_kb" else shared_label
            print(
                f"| {r['n']} | {label} | {op} | {statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} |"
                f" {left} | {total:,} | {files} | {_mib(m0[lay])} -> {_mib(m1[lay])} |"
            )
    for r in results:
        print(f"- {r['n']} KBs: flush after the deletes {r['delete_flush_s'] * 1000:.0f} ms")

    print("\n## Creating a KB\n")
    print("| KBs | layout | what | median ms | min | max |")
    print("|---:|---|---|---:|---:|---:|")
    for r in results:
        c = r["create_per_kb"]
        print(
            f"| {r['n']} | collection per KB | `create_collection` with the indexes (+ load), 0..{r['n'] - 1} existing |"
            f" {statistics.median(c) * 1000:.0f} | {min(c) * 1000:.0f} | {max(c) * 1000:.0f} |"
        )
        print(
            f"| {r['n']} | {shared_label} | nothing (a new `kb` value); the shared collection itself, once |"
            f" 0 (once: {r['create_shared'] * 1000:.0f}) | | |"
        )
    for r in results:
        print(
            f"- {r['n']} KBs: one collection without full text (the dense index alone): {r['create_dense_only'] * 1000:.0f} ms"
        )


def start_standalone(base: Path) -> tuple[Any, str]:
    from bench_query import start_standalone as start  # benchmarks/ (scripts run from this folder)

    return start(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kbs", type=int, nargs="*", default=[2, 10], help="numbers of KBs")
    ap.add_argument(
        "--chunks",
        type=int,
        nargs="*",
        help="chunks per KB, one per --kbs value (default: 10,000 for 2 KBs, 3,000 for 10, else 20,000 / N)",
    )
    ap.add_argument("--queries", type=int, default=200, help="latency queries per leg")
    ap.add_argument("--drift-queries", type=int, default=50, help="BM25 queries compared before/after")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, help="folder for the Milvus Lite files (default: a temporary one)")
    ap.add_argument(
        "--milvus-standalone",
        action="store_true",
        help="also the dense-only legs on a local Milvus 2.3 standalone server, `kb` a real partition key",
    )
    args = ap.parse_args()
    if args.chunks and len(args.chunks) != len(args.kbs):
        ap.error("--chunks needs one value per --kbs value")
    sizes = args.chunks or [DEFAULT_CHUNKS.get(n, 20_000 // n) for n in args.kbs]
    import milvus_lite
    import pymilvus

    bm25 = BM25Settings(backend="milvus")
    print("# KB layout: one collection per KB vs one shared collection filtered by `kb`")
    print(
        f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, numpy {np.__version__},"
        f" pymilvus {pymilvus.__version__}, milvus-lite {getattr(milvus_lite, '__version__', '?')}"
    )
    print(f"# command: python benchmarks/bench_kb_layout.py {' '.join(sys.argv[1:])}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"# {DIM}-d vectors, {MilvusSettings().index_type}/{MilvusSettings().metric}; BM25 k1 {bm25.k1}, b {bm25.b};"
        f" vocabulary {VOCAB:,} (Zipf {ZIPF}); {args.queries} latency queries, {args.drift_queries} for the BM25 drift",
        flush=True,
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kb-layout-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run_all(args, sizes, work, bm25)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run_all(args: argparse.Namespace, sizes: list[int], work: Path, bm25: BM25Settings) -> None:
    started = time.perf_counter()

    probe = probe_partition_key(work, bm25, np.random.default_rng(args.seed))
    print("\n## Milvus Lite: the shared collection with `kb` as partition key\n")
    print("| operation | outcome |")
    print("|---|---|")
    for what, outcome in probe:
        print(f"| {what} | {outcome.replace('|', '/')} |")
    pk_works = not any(o.startswith("ERROR") for w, o in probe if "filter kb ==" in w)
    shared_label = "shared, `kb` partition key" if pk_works else "shared, plain `kb` field"
    if not pk_works:
        print(
            "\nFilters fail on a partition-key collection in this Milvus Lite: the shared layout below is the same"
            " collection with `kb` a plain VARCHAR field (same filter, no partition pruning)."
        )

    results = []
    for n, size in zip(args.kbs, sizes):
        t = time.perf_counter()
        results.append(run_n(n, size, args, work, bm25, partition_key=pk_works))
        print(
            f"# {n} KBs x {size:,} chunks: {time.perf_counter() - t:.0f} s (data generation"
            f" {results[-1]['gen_s']:.0f} s)",
            flush=True,
        )
    print("\n# Milvus Lite")
    report(results, True, shared_label)

    if args.milvus_standalone:
        import milvus

        server, uri = start_standalone(work / "standalone")
        try:
            print(
                f"\n# Milvus standalone {milvus.__version__} (PyPI `milvus`) at {uri}: dense only (no BM25 function"
                " before 2.5), `kb` a partition key; server memory not split by layout",
                flush=True,
            )
            print('\n## Milvus standalone: rows of KB A a `kb == "kb0"` filter finds, by write call\n')
            print("| write | KB A rows written | found by count(*) with the filter | partitions |")
            print("|---|---:|---:|---:|")
            for write, found, written, parts in probe_server_writes(uri, np.random.default_rng(args.seed)):
                print(f"| {write} | {written:,} | {found:,} | {parts} |")
            print(
                "\nBelow both layouts are written with `insert` (the server's `upsert` misroutes partition-key rows).",
                flush=True,
            )
            sa = []
            for n, size in zip(args.kbs, sizes):
                t = time.perf_counter()
                sa.append(run_n(n, size, args, work, None, uri=uri, partition_key=True, write="insert"))
                print(f"# {n} KBs x {size:,} chunks: {time.perf_counter() - t:.0f} s", flush=True)
            report(sa, False, "shared, `kb` partition key", write="insert")
        finally:
            server.stop()

    print(
        "\n- Isolation: in the shared collection every search, query, count, iterator and delete must carry the"
        ' `kb` filter; one without it reads (or deletes) every KB\'s rows ("filter forgotten" rows above).'
    )
    print(
        f"# total {time.perf_counter() - started:.0f} s; load average at end:"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}" + (f"; files kept in {work}" if args.work else "")
    )


if __name__ == "__main__":
    main()
