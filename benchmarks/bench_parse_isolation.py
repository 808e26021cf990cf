"""What parsing in the isolated child process (``DocumentLoader``, the per-file time budget) costs
over parsing in-process (``load_bytes``), on the files in samples/.

Per file: the median of ``--repeats`` loads each way (the child already running), and the
difference. Once: the cold start (first load, which starts the child: a fresh interpreter importing
the loaders). For scale, the time to embed the same files' chunks with the default embedder
(multilingual-e5-small, CPU), which is what ingestion spends its time on.

    python benchmarks/bench_parse_isolation.py --repeats 30
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # benchmarks/machine.py (scripts run from this folder)

from ingest.loaders import DocumentLoader, LoaderSettings, load_bytes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, default=REPO / "samples")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-embed", action="store_true", help="skip the embedding comparison")
    args = parser.parse_args()

    files = [(p.name, p.read_bytes()) for p in sorted(args.samples.iterdir()) if p.is_file()]
    isolated = DocumentLoader(LoaderSettings())  # the default budget: parsed in the child process

    start = time.perf_counter()
    isolated(*reversed(files[0]))
    cold_ms = (time.perf_counter() - start) * 1000

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cold start (child process started + first file parsed): {cold_ms:.0f} ms")
    print(f"{'file':28} {'KB':>6} {'in-process ms':>14} {'isolated ms':>12} {'overhead ms':>12}")
    total_in = total_iso = 0.0
    docs = []
    for name, data in files:
        in_ms = _median_ms(lambda data=data, name=name: load_bytes(data, name), args.repeats)
        iso_ms = _median_ms(lambda data=data, name=name: isolated(data, name), args.repeats)
        total_in += in_ms
        total_iso += iso_ms
        docs.append(load_bytes(data, name))
        print(f"{name:28} {len(data) / 1024:6.1f} {in_ms:14.2f} {iso_ms:12.2f} {iso_ms - in_ms:12.2f}")
    print(f"{'all files':28} {'':6} {total_in:14.2f} {total_iso:12.2f} {total_iso - total_in:12.2f}")

    if args.no_embed:
        return
    from ingest.chunking import Chunker
    from ingest.embedding import Embedder
    from ingest.settings import ChunkerSettings, EmbedderSettings

    embedder = Embedder(EmbedderSettings(cache_dir=str(REPO / "data" / "models")))
    embedder.warm_up()
    chunks = [c.text for doc in docs for c in Chunker(ChunkerSettings(), embedder).chunk(doc)]
    embedder.embed_documents(chunks[:4])  # first-call warm-up
    start = time.perf_counter()
    embedder.embed_documents(chunks)
    embed_ms = (time.perf_counter() - start) * 1000
    overhead = total_iso - total_in
    print(f"embedding the same files' {len(chunks)} chunks: {embed_ms:.0f} ms; "
          f"isolation overhead = {100 * overhead / embed_ms:.2f}% of it")


if __name__ == "__main__":
    main()
