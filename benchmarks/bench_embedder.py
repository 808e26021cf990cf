"""Embedding throughput: the fp32 torch runtime against OpenVINO int8 (the default), OpenVINO
unquantised (bfloat16 where the CPU has it) and int8 ONNX Runtime (``embedder.runtime``), side by
side in one process on the same chunks.

The chunks are those the pipeline makes (same loaders, same chunker) of the first N SciFact
abstracts and CMRC paragraphs. Rounds alternate the runtimes (each warmed up untimed first);
reported: chunks/s per round, the cosine of each vector to its torch fp32 one, and the latency of
one query embedded alone (what a question waits for), median of the queries of both sets.
Results are printed as the table of BENCHMARKS.md, "Embedding throughput" (that section also holds
the ranking runs and what was tried, so the script does not rewrite it).

    python benchmarks/bench_embedder.py                  # 120 + 60 documents, 3 rounds, 2 threads
    python benchmarks/bench_embedder.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from ingest.chunking import Chunker  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from ingest.loaders import load_document  # noqa: E402
from ingest.settings import ChunkerSettings, EmbedderSettings  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
RUNTIMES = ("torch", "openvino", "openvino-int8", "onnx-int8")
log = logging.getLogger("bench_embedder")


def _read(path: Path, n: int) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(n), fh)]


def chunk_texts(folder: Path, n_en: int, n_zh: int, embedder: Embedder) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(_read(SHARED / "scifact-dev" / "corpus.jsonl", n_en)):
        (folder / f"scifact_{i:04d}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
    for i, d in enumerate(_read(SHARED / "cmrc2018-trial" / "corpus.jsonl", n_zh)):
        (folder / f"cmrc_{i:04d}.txt").write_text(f"{d['title']}\n\n{d['text']}\n", encoding="utf-8")
    chunker = Chunker(ChunkerSettings(), embedder)
    return [c.text for f in sorted(folder.iterdir()) for c in chunker.chunk(load_document(f))]


def queries(n: int) -> list[str]:
    out = []
    for name in ("scifact-dev", "cmrc2018-trial"):
        out += [q["text"] for q in _read(SHARED / name / "queries.jsonl", n)]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--en", type=int, default=120, help="SciFact abstracts")
    p.add_argument("--zh", type=int, default=60, help="CMRC paragraphs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--queries", type=int, default=25, help="single-query latency: this many per set")
    p.add_argument("--models-dir", default=str(REPO / "data" / "models"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    embedders = {
        rt: Embedder(EmbedderSettings(cache_dir=args.models_dir, runtime=rt, num_threads=args.threads))
        for rt in RUNTIMES
    }
    load_s = {}
    for rt, e in embedders.items():
        t0 = time.perf_counter()
        e.warm_up()
        load_s[rt] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        texts = chunk_texts(Path(tmp) / "corpus", args.en, args.zh, embedders["torch"])
    tokens = embedders["torch"].count_tokens(texts)
    log.info("%d chunks, median %d tokens", len(texts), statistics.median(tokens))
    for e in embedders.values():  # the first large call of a process runs slow: untimed
        e.embed_documents(texts[:32])

    rates: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for rt, e in embedders.items():
            t0 = time.perf_counter()
            vectors[rt] = e.embed_documents(texts)
            rates[rt].append(len(texts) / (time.perf_counter() - t0))
            log.info("round %d %s: %.1f chunks/s", r + 1, rt, rates[rt][-1])
    cosines = {rt: (vectors["torch"] * vectors[rt]).sum(axis=1) for rt in RUNTIMES[1:]}

    qs = queries(args.queries)
    query_ms: dict[str, float] = {}
    qvec: dict[str, np.ndarray] = {}
    for rt, e in embedders.items():
        times, vecs = [], []
        for q in qs:
            t0 = time.perf_counter()
            vecs.append(e.embed_queries([q])[0])
            times.append(time.perf_counter() - t0)
        query_ms[rt] = statistics.median(times) * 1000
        qvec[rt] = np.stack(vecs)
    qcos = {rt: (qvec["torch"] * qvec[rt]).sum(axis=1) for rt in RUNTIMES[1:]}

    best = {rt: max(v) for rt, v in rates.items()}
    lines = [
        "## Embedding throughput",
        "",
        "```bash",
        "python benchmarks/bench_embedder.py",
        "```",
        "",
        f"{cpu_model()}, {platform.machine()}, Python {platform.python_version()}; {args.threads} threads for"
        f" every runtime; {time.strftime('%Y-%m-%d')}. Chunks: the pipeline's chunks of the first {args.en}"
        f" SciFact abstracts and {args.zh} CMRC paragraphs ({len(texts)} chunks, median"
        f" {statistics.median(tokens):.0f} tokens, batch 16, length-sorted), embedded whole in each round;"
        " rounds alternate the runtimes in one process. Query latency: one query embedded alone, median of"
        f" {len(qs)} questions of both sets.",
        "",
        "| runtime | computes in | load s (first use builds the converted copy) | "
        + " | ".join(f"round {i + 1} chunks/s" for i in range(args.rounds))
        + " | best chunks/s | speed-up over torch | query p50 ms | min cosine to torch fp32: chunks / queries |",
        "|---|---|---:|" + "---:|" * args.rounds + "---:|---:|---:|---:|",
    ]
    for rt in RUNTIMES:
        lines.append(
            f"| {rt} | {embedders[rt].precision} | {load_s[rt]:.1f} | " + " | ".join(f"{x:.1f}" for x in rates[rt])
            + f" | {best[rt]:.1f} | {best[rt] / best['torch']:.2f}x | {query_ms[rt]:.0f} | "
            + (f"{cosines[rt].min():.5f} / {qcos[rt].min():.5f} |" if rt in cosines else "– |")
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
