"""Retrieval quality on BEIR-format sets: dense, BM25 and hybrid legs, plus offline fusion variants.

Each dataset gets its own knowledge base under ``--data-root/<name>``. Ingestion is idempotent and
resumable (documents already indexed are skipped by content hash), so a killed run continues where
it stopped. Each query runs once; the three legs and every fusion variant are derived from the same
candidates (both legs' ranks and scores travel with each candidate).

    RAG_EMBEDDER__CACHE_DIR=data/models python benchmarks/bench_retrieval.py --data-root .bench
    python benchmarks/bench_retrieval.py ../shared/data/cmrc2018-trial --max-queries 100
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the benchmark never reaches a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tqdm import tqdm  # noqa: E402

from ingest.beir import corpus_size, iter_corpus  # noqa: E402
from ingest.indexer import IngestEvent  # noqa: E402
from rag_app.config import Settings  # noqa: E402
from rag_app.evaluation.beir_eval import (  # noqa: E402
    DEFAULT_DEPTH,
    LEGS,
    CandidateSet,
    collect_candidates,
    evaluate_candidates,
    fusion_run,
    leg_run,
    paired_bootstrap,
    per_query_ndcg,
    score_run,
)
from rag_app.knowledge_base import KnowledgeBase  # noqa: E402
from machine import cpu_model  # benchmarks/machine.py (scripts run from this folder)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = [REPO.parent / "shared" / "data" / "scifact-dev", REPO.parent / "shared" / "data" / "cmrc2018-trial"]

# Published SciFact nDCG@10 (BEIR *test* split; ours is the train split's queries: indicative only).
SCIFACT_REFERENCE = [
    ("BM25 (BEIR, Anserini/Elasticsearch)", "0.665-0.679"),
    ("all-MiniLM-L6-v2", "~0.645"),
    ("bge-small-en-v1.5", "~0.72"),
    ("bge-base-en-v1.5", "0.741"),
    ("BM25 + cross-encoder rerank", "0.688"),
]

# Offline fusion variants: (label, kwargs of beir_eval.fused_order).
FUSION_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("RRF k=60, dense 1.0 / bm25 1.0 (default)", {"method": "rrf", "rrf_k": 60, "dense_weight": 1.0, "bm25_weight": 1.0}),
    ("RRF k=60, dense 1.0 / bm25 0.5", {"method": "rrf", "rrf_k": 60, "dense_weight": 1.0, "bm25_weight": 0.5}),
    ("RRF k=60, dense 0.5 / bm25 1.0", {"method": "rrf", "rrf_k": 60, "dense_weight": 0.5, "bm25_weight": 1.0}),
    ("weighted_sum (min-max), 1.0 / 1.0", {"method": "weighted_sum", "dense_weight": 1.0, "bm25_weight": 1.0}),
]

METRICS = [("ndcg@10", "nDCG@10"), ("recall@10", "Recall@10"), ("recall@100", "Recall@100"), ("mrr@10", "MRR@10")]


def make_settings(data_dir: Path, models_dir: Path) -> Settings:
    """Project settings (YAML + env), with this dataset's data dir and the shared model cache."""
    settings = Settings(data_dir=data_dir)
    settings.embedder = settings.embedder.model_copy(update={"cache_dir": str(models_dir)})
    return settings


def ingest(kb: KnowledgeBase, dataset: Path) -> float:
    assert kb.indexer is not None
    total = corpus_size(dataset)
    bar = tqdm(total=total, desc=f"ingest {dataset.name}", unit="doc", dynamic_ncols=True)

    def progress(ev: IngestEvent) -> None:
        bar.update(1)
        if ev.status == "failed":
            tqdm.write(f"failed: {ev.source}: {ev.detail}")

    t0 = time.perf_counter()
    report = kb.indexer.ingest_documents(iter_corpus(dataset), progress, total=total)
    bar.close()
    elapsed = time.perf_counter() - t0
    print(
        f"{dataset.name}: {len(report.indexed)} indexed, {len(report.unchanged)} already indexed, "
        f"{len(report.failed)} failed, {report.chunks_added} chunks added in {elapsed:.0f} s",
        flush=True,
    )
    return elapsed


def fmt(x: float) -> str:
    return f"{x:.3f}"


def legs_table(rows: list[tuple[str, dict[str, dict[str, float]]]]) -> str:
    lines = [
        "| set | leg | " + " | ".join(h for _, h in METRICS) + " | Recall@100, own hits (docs) | ms/query |",
        "|---|---|" + "---:|" * (len(METRICS) + 2),
    ]
    for name, res in rows:
        for leg in LEGS:
            m = res[leg]
            lines.append(
                f"| {name} | {leg} | "
                + " | ".join(fmt(m[k]) for k, _ in METRICS)
                + f" | {fmt(m['recall@100_own'])} ({m['docs_own']:.0f}) | {m['ms_per_query']:.0f} (p50 {m['ms_p50']:.0f}) |"
            )
    return "\n".join(lines)


def fusion_table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    lines = [
        "| set | fusion | " + " | ".join(h for _, h in METRICS) + " | ΔnDCG@10 vs better leg [95% CI] |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for name, label, m in rows:
        delta = f"{m['delta']:+.3f} [{m['delta_lo']:+.3f}, {m['delta_hi']:+.3f}] vs {m['best_leg']}"
        lines.append(f"| {name} | {label} | " + " | ".join(fmt(m[k]) for k, _ in METRICS) + f" | {delta} |")
    return "\n".join(lines)


def fusion_variants(cands: CandidateSet, best_leg: str) -> list[tuple[str, dict[str, Any]]]:
    """Each variant's metrics and its paired-bootstrap nDCG@10 gap to the better single leg."""
    best = per_query_ndcg(leg_run(cands, best_leg), cands)
    out: list[tuple[str, dict[str, Any]]] = []
    for label, kw in FUSION_VARIANTS:
        run = fusion_run(cands, **kw)
        delta, lo, hi = paired_bootstrap(per_query_ndcg(run, cands), best)
        m: dict[str, Any] = dict(score_run(run, cands, (10,)))
        m.update(delta=delta, delta_lo=lo, delta_hi=hi, best_leg=best_leg)
        out.append((label, m))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="*", type=Path, default=DEFAULT_SETS, help="BEIR-format folders")
    ap.add_argument("--data-root", type=Path, default=Path(".bench"), help="one knowledge base per set under here")
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("RAG_EMBEDDER__CACHE_DIR", "data/models")),
        help="where the converted embedding model lives (reused, not rebuilt)",
    )
    ap.add_argument("--max-queries", type=int, default=None, help="first N judged queries per set")
    ap.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="candidates per leg (dense and BM25 top-k)")
    ap.add_argument("--skip-ingest", action="store_true", help="evaluate the existing index as it is")
    ap.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    args = ap.parse_args(argv)

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    leg_rows: list[tuple[str, dict[str, dict[str, float]]]] = []
    load_before = os.getloadavg()[0]
    fusion_rows: list[tuple[str, str, dict[str, float]]] = []
    dump: dict[str, Any] = {}
    for dataset in args.datasets:
        dataset = dataset.resolve()
        name = dataset.name
        settings = make_settings(args.data_root.resolve() / name, args.models_dir.resolve())
        kb = KnowledgeBase(settings).warm_up()
        try:
            ingest_s = None if args.skip_ingest else ingest(kb, dataset)
            assert kb.bm25 is not None
            n_chunks = len(kb.bm25)
            print(f"{name}: {n_chunks} chunks in the index", flush=True)
            bar = tqdm(desc=f"queries {name}", unit="q", dynamic_ncols=True)

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(1)

            cands = collect_candidates(kb, dataset, max_queries=args.max_queries, depth=args.depth, progress=progress)
            bar.close()
        finally:
            kb.close()
        legs = evaluate_candidates(cands)
        best_leg = max(("dense", "bm25"), key=lambda leg: legs[leg]["ndcg@10"])
        variants = fusion_variants(cands, best_leg)
        leg_rows.append((name, legs))
        fusion_rows.extend((name, label, m) for label, m in variants)
        dump[name] = {
            "legs": legs,
            "fusion": dict(variants),
            "ingest_s": ingest_s,
            "chunks": n_chunks,
            "queries": len(cands.queries),
            "candidates_per_query": sum(len(q.chunks) for q in cands.queries) / max(len(cands.queries), 1),
        }
        # The requirement: hybrid must not fall below the better single leg.
        delta, lo, hi = paired_bootstrap(
            per_query_ndcg(leg_run(cands, "hybrid"), cands), per_query_ndcg(leg_run(cands, best_leg), cands)
        )
        verdict = "OK" if delta >= 0 else "BELOW the better single leg"
        print(
            f"{name}: hybrid nDCG@10 - {best_leg} nDCG@10 = {delta:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}): {verdict}",
            flush=True,
        )
        dump[name]["hybrid_minus_best_leg"] = {"leg": best_leg, "delta": delta, "ci95": [lo, hi]}

    # ms/query is wall time on a shared machine: the load average says how contended it was.
    print(f"load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end", flush=True)
    print("\n## Legs (one retrieval per query; the three rankings come from the same candidates)\n")
    print(legs_table(leg_rows))
    print("\n## Fusion variants (recomputed offline from the same candidates)\n")
    print(fusion_table(fusion_rows))
    print("\n## Published SciFact nDCG@10 (BEIR test split)\n")
    print("| system | nDCG@10 |\n|---|---:|")
    for system, value in SCIFACT_REFERENCE:
        print(f"| {system} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
