"""Ingestion throughput and memory: the full pipeline against the embedding model alone.

Two measurements:

``overhead`` (default): real multilingual-e5-small on a modest real corpus (the first N SciFact
abstracts and CMRC paragraphs written out as .txt/.md files). In one process, alternating:
(a) the embedder alone on exactly the chunks the pipeline produces, in one call (best-case
length sorting), and (b) ``Indexer.ingest_paths`` on the folder into a fresh data directory
(loading, parsing, chunking, embedding, BM25 tokenisation + index, Milvus Lite upserts, registry,
final BM25 save + Milvus flush). Overhead = (b) / (a) - 1, per round and for the best rounds.

``rss``: peak resident memory of ingestion over folders of growing size (generated mixed zh/en
text files), each size in a fresh child process, sampling the RSS of the Python process and of
the Milvus Lite server process it starts. The embedder is a *tiny random model* (the e5 tokenizer,
one 384-d transformer layer, random weights) so the sizes are reachable on 2 cores: it proves
memory boundedness of the pipeline, not speed or quality. The BM25 index lives in the Python
process by design (its footprint, ``BM25Index.memory_bytes()``, is reported and subtracted: the
rest is the pipeline's working set, which must not grow), and Milvus Lite keeps its rows in its
own process.

    python benchmarks/bench_ingest.py                         # overhead, 177 chunks, ~3 min
    python benchmarks/bench_ingest.py rss --sizes-mb 10 30    # memory series, one-layer model (~15 min)
    python benchmarks/bench_ingest.py rss --sizes-mb 10 30 --no-heap-release    # the alternative
    python benchmarks/bench_ingest.py rss --sizes-mb 1000 --layers 0   # the 1 GB point (1-2 hours on 2 cores)
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from machine import cpu_model  # noqa: E402  (benchmarks/, scripts run from there)

from ingest.embedding import Embedder  # noqa: E402
from ingest.settings import EmbedderSettings  # noqa: E402
from rag_app.config import Settings  # noqa: E402
from rag_app.service import KnowledgeBase  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
PROGRESS_EVERY_S = 60.0
log = logging.getLogger("bench_ingest")


def read_corpus(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ---------------------------------------------------------------------------- overhead


def write_real_corpus(folder: Path, n_en: int, n_zh: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, d in enumerate(read_corpus(SHARED / "scifact-dev" / "corpus.jsonl")[:n_en]):
        (folder / f"scifact_{i:04d}.md").write_text(f"# {d['title']}\n\n{d['text']}\n", encoding="utf-8")
    for i, d in enumerate(read_corpus(SHARED / "cmrc2018-trial" / "corpus.jsonl")[:n_zh]):
        (folder / f"cmrc_{i:04d}.txt").write_text(f"{d['title']}\n\n{d['text']}\n", encoding="utf-8")


def make_kb(data_dir: Path, models_dir: str, embedder: Embedder | None = None) -> KnowledgeBase:
    shutil.rmtree(data_dir, ignore_errors=True)
    kb = KnowledgeBase(Settings(data_dir=data_dir, embedder=EmbedderSettings(cache_dir=models_dir)))
    if embedder is not None:
        kb.embedder = embedder
    return kb.warm_up()


def pipeline_chunks(kb: KnowledgeBase, folder: Path) -> list[str]:
    """The chunk texts the indexer will embed for ``folder`` (same loaders, same chunker)."""
    from ingest.loaders import load_document

    texts: list[str] = []
    for f in sorted(folder.iterdir()):
        texts.extend(c.text for c in kb.indexer.chunker.chunk(load_document(f)))  # type: ignore[union-attr]
    return texts


def overhead(args: argparse.Namespace) -> None:
    # Its own subfolder: the rss series keeps its (slow to generate) folders in the work dir.
    work = Path(args.work_dir) / "overhead"
    folder = work / "corpus"
    shutil.rmtree(work, ignore_errors=True)
    write_real_corpus(folder, args.en_docs, args.zh_docs)
    mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20

    kb = make_kb(work / "data0", args.models_dir)
    embedder = kb.embedder
    # One-off per process, not per chunk: jieba loads its dictionary on first use.
    t = time.perf_counter()
    kb.tokenizer.tokenize("预热分词词典 warm up")
    jieba_s = time.perf_counter() - t
    texts = pipeline_chunks(kb, folder)
    kb.close()
    n = len(texts)
    embedder.embed_documents(texts[:32])  # untimed: torch's first large batches run slow
    print(f"# Ingestion overhead: {len(list(folder.iterdir()))} files ({mb:.2f} MiB), {n} chunks")
    print(
        f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}, "
        f"torch threads {__import__('torch').get_num_threads()}, embedder batch {embedder.settings.batch_size}, "
        f"indexer buffer {kb.indexer.batch_chunks if kb.indexer else '?'} chunks"
    )
    print(f"# command: python benchmarks/bench_ingest.py {' '.join(sys.argv[1:])}")
    print(f"# jieba dictionary load before the rounds (once per process, not timed below): {jieba_s:.1f} s\n")
    print("| round | embed alone s | chunks/s | pipeline s | chunks/s | overhead | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    embed_s, pipe_s = [], []
    for r in range(args.rounds):
        t = time.perf_counter()
        embedder.embed_documents(texts)
        embed_s.append(time.perf_counter() - t)

        kb = make_kb(work / f"data{r + 1}", args.models_dir, embedder)
        profiler = cProfile.Profile() if args.profile and r == args.rounds - 1 else None
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        report = kb.indexer.ingest_paths([folder])  # type: ignore[union-attr]
        if profiler:
            profiler.disable()
        pipe_s.append(time.perf_counter() - t)
        assert report.chunks_added == n and not report.failed, (report.chunks_added, n, report.failed)
        kb.close()
        print(
            f"| {r + 1} | {embed_s[-1]:.1f} | {n / embed_s[-1]:.1f} | {pipe_s[-1]:.1f} | {n / pipe_s[-1]:.1f} | "
            f"{pipe_s[-1] / embed_s[-1] - 1:+.1%} | {' '.join(f'{x:.2f}' for x in os.getloadavg())} |",
            flush=True,
        )
        if profiler:
            buf = io.StringIO()
            pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(25)
            (work / "profile.txt").write_text(buf.getvalue())
    total_e, total_p = sum(embed_s), sum(pipe_s)
    print(
        f"\n- all rounds: embed alone {n * len(embed_s) / total_e:.2f} chunks/s, pipeline "
        f"{n * len(pipe_s) / total_p:.2f} chunks/s, overhead {total_p / total_e - 1:+.1%}; "
        f"best rounds: {min(pipe_s) / min(embed_s) - 1:+.1%}"
    )
    if args.profile:
        print(f"- cProfile of the last pipeline round: {work / 'profile.txt'}")


# ---------------------------------------------------------------------------- rss series


def tiny_model_dir(models_dir: str, target: Path, layers: int = 1) -> Path:
    """e5's tokenizer with a ``layers``-layer random-weight encoder of the same width (384); with 0
    layers the "encoder" is the embedding table and its LayerNorm (almost free to run)."""
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    source = Path(models_dir) / "multilingual-e5-small"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, target / name)
    config = XLMRobertaConfig.from_pretrained(source)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(target)
    return target


def write_synthetic_folder(folder: Path, megabytes: int, seed: int) -> int:
    """Mixed zh/en text files of ~128 KiB (paragraphs sampled from SciFact and CMRC), unique
    content per file. Returns the bytes written."""
    if (folder / ".done").exists():
        return int((folder / ".done").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    en = [d["text"] for d in read_corpus(SHARED / "scifact-dev" / "corpus.jsonl") if d["text"]]
    zh = [d["text"] for d in read_corpus(SHARED / "cmrc2018-trial" / "corpus.jsonl") if d["text"]]
    rng = random.Random(seed)
    written, i = 0, 0
    while written < megabytes * 2**20:
        parts, size = [f"# file {i}\n"], 0
        while size < 128 * 1024:
            p = rng.choice(en) if rng.random() < 0.5 else rng.choice(zh)
            parts.append(p)
            size += len(p.encode("utf-8"))
        data = "\n\n".join(parts).encode("utf-8")
        sub = folder / f"d{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:06d}.{'md' if i % 2 else 'txt'}").write_bytes(data)
        written += len(data)
        i += 1
    (folder / ".done").write_text(str(written))
    return written


def rss_child(folder: Path, data_dir: Path, model: Path, release_heap: bool, progress: Path | None = None) -> None:
    """One ingestion run with RSS sampling; prints one JSON line. With ``progress``, also appends
    a JSON line there every ``PROGRESS_EVERY_S``: the memory curve along a long run."""
    import psutil

    if not release_heap:  # the alternative measured: no heap release after each batch
        import ingest.indexer

        ingest.indexer.release_free_heap = lambda: False  # type: ignore[assignment]

    me = psutil.Process()
    peaks = {"python": 0, "milvus": 0}
    stop = threading.Event()
    files_done = [0, 0]  # files handled, bytes of the handled files

    def sample() -> None:
        next_line = time.perf_counter() + PROGRESS_EVERY_S
        rss = milvus = others = 0
        while not stop.is_set():
            try:
                rss = me.memory_info().rss
                peaks["python"] = max(peaks["python"], rss)
                children = me.children(recursive=True)  # the Milvus Lite server and the parse child
                milvus = sum(c.memory_info().rss for c in children if "milvus" in c.name())
                others = sum(c.memory_info().rss for c in children if "milvus" not in c.name())
                peaks["milvus"] = max(peaks["milvus"], milvus)
            except psutil.Error:
                pass
            if progress is not None and time.perf_counter() >= next_line:
                next_line += PROGRESS_EVERY_S
                line = {
                    "s": round(time.perf_counter() - t, 1), "files": files_done[0], "mib_read": files_done[1] >> 20,
                    "chunks": len(kb.bm25), "rss": rss, "peak_python": peaks["python"],  # type: ignore[arg-type]
                    "milvus": milvus, "peak_milvus": peaks["milvus"], "other_children": others,
                    "bm25_memory": kb.bm25.memory_bytes()["total"],  # type: ignore[union-attr]
                }
                with progress.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")
            stop.wait(0.2)

    def on_event(event: Any) -> None:
        files_done[0] += 1
        with contextlib.suppress(OSError):
            files_done[1] += Path(event.source).stat().st_size

    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, embedder=EmbedderSettings(model=str(model), batch_size=32))
    kb = KnowledgeBase(settings).warm_up()
    after_warm = me.memory_info().rss
    t = time.perf_counter()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    report = kb.indexer.ingest_paths([folder], progress=on_event)  # type: ignore[union-attr]
    took = time.perf_counter() - t
    stop.set()
    thread.join()
    stats = kb.bm25.stats()  # type: ignore[union-attr]
    bm25_memory = kb.bm25.memory_bytes()["total"]  # type: ignore[union-attr]
    rss_end = me.memory_info().rss
    kb.close()
    print(
        json.dumps(
            {
                "files": len(report.indexed),
                "failed": len(report.failed),
                "chunks": report.chunks_added,
                "seconds": took,
                "rss_after_warm_up": after_warm,
                "peak_python": peaks["python"],
                "peak_milvus": peaks["milvus"],
                "maxrss_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "bm25_postings": stats.get("postings"),
                "bm25_memory": bm25_memory,
                "rss_end": rss_end,
                "bm25_disk": sum(f.stat().st_size for f in settings.bm25_dir.iterdir()),
                "milvus_disk": sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file() and "milvus" in f.name),
            }
        ),
        flush=True,
    )


def rss(args: argparse.Namespace) -> None:
    work = Path(args.work_dir)
    name = "tiny-random-e5" if args.layers == 1 else f"tiny-random-e5-{args.layers}layers"
    model = tiny_model_dir(args.models_dir, work / name, args.layers)
    mib = 2**20
    print(f"# Ingestion peak RSS vs corpus size (tiny random model, {args.layers} encoder layer(s): proves memory "
          "boundedness, not speed)")
    print(f"# CPU: {cpu_model()} x{os.cpu_count()}, Python {platform.python_version()}")
    print(f"# command: python benchmarks/bench_ingest.py {' '.join(sys.argv[1:])}\n")
    print(
        "| heap release | corpus MiB | files | chunks | ingest s | chunks/s | Python RSS after warm-up MiB | peak Python RSS MiB |"
        " BM25 index in memory MiB | peak Python RSS - BM25 MiB | Python RSS at end MiB | peak Milvus Lite RSS MiB |"
        " BM25 on disk MiB | Milvus on disk MiB | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes_mb:
        folder = work / f"corpus-{size}mb"
        written = write_synthetic_folder(folder, size, seed=size)
        progress = work / f"progress-{size}mb{'-no-release' if args.no_heap_release else ''}.jsonl"
        progress.unlink(missing_ok=True)  # the child appends: one run per file
        out = subprocess.run(
            [sys.executable, __file__, "rss-child", str(folder), str(work / f"data-{size}mb"), str(model)]
            + (["--no-heap-release"] if args.no_heap_release else [])
            + ["--progress", str(progress)],
            capture_output=True,
            text=True,
            check=False,
        )
        line = next((x for x in reversed(out.stdout.splitlines()) if x.startswith("{")), None)
        if line is None:
            print(f"| | {size} | child failed: {out.stderr[-2000:]} |")
            continue
        r = json.loads(line)
        print(
            f"| {'no' if args.no_heap_release else 'per batch'} | {written / mib:.0f} | {r['files']} | {r['chunks']:,} | {r['seconds']:.0f} | {r['chunks'] / r['seconds']:.0f} | "
            f"{r['rss_after_warm_up'] / mib:.0f} | {r['peak_python'] / mib:.0f} | {r['bm25_memory'] / mib:.0f} | "
            f"{(r['peak_python'] - r['bm25_memory']) / mib:.0f} | {r['rss_end'] / mib:.0f} | {r['peak_milvus'] / mib:.0f} | "
            f"{r['bm25_disk'] / mib:.0f} | {r['milvus_disk'] / mib:.0f} | {' '.join(f'{x:.2f}' for x in os.getloadavg())} |",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(work / f"data-{size}mb", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode")
    ap.add_argument("--work-dir", default=str(REPO / ".bench" / "ingest"))
    ap.add_argument("--models-dir", default=str(REPO / "data" / "models"))
    ap.add_argument("--en-docs", type=int, default=60, help="SciFact abstracts (English)")
    ap.add_argument("--zh-docs", type=int, default=30, help="CMRC paragraphs (Chinese)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile the last pipeline round")
    r = sub.add_parser("rss", help="peak RSS over growing folders (tiny random model)")
    r.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100])
    r.add_argument("--keep", action="store_true")
    r.add_argument("--layers", type=int, default=1, help="encoder layers of the tiny random model (0: embedding table only)")
    c = sub.add_parser("rss-child")
    c.add_argument("folder", type=Path)
    c.add_argument("data_dir", type=Path)
    c.add_argument("model", type=Path)
    c.add_argument("--progress", type=Path, help="append the memory curve here (JSON lines)")
    for parser in (r, c):
        parser.add_argument("--no-heap-release", action="store_true",
                            help="the alternative: no malloc_trim after each indexer batch")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.mode == "rss":
        rss(args)
    elif args.mode == "rss-child":
        rss_child(args.folder, args.data_dir, args.model, not args.no_heap_release, args.progress)
    else:
        overhead(args)


if __name__ == "__main__":
    main()
