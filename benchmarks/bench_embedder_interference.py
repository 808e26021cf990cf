"""Does the embedder slow down the work that follows it on the same cores? (Milvus Lite, the torch
reranker.) A runtime whose worker threads spin after an inference would steal the cores from them.

A 2-thread torch matmul loop is timed alone, then right after each of 10 single-query embeddings
with the given runtime, then after a second idle.

    python benchmarks/bench_embedder_interference.py torch
    python benchmarks/bench_embedder_interference.py openvino
"""
from __future__ import annotations

import sys
import time

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

import torch  # noqa: E402

from ingest.embedding import Embedder  # noqa: E402
from ingest.settings import EmbedderSettings  # noqa: E402


def main() -> None:
    runtime = sys.argv[1] if len(sys.argv) > 1 else "openvino"
    torch.set_num_threads(2)
    a, w = torch.randn(256, 384), torch.randn(384, 1536)

    def work_ms() -> float:
        t0 = time.perf_counter()
        for _ in range(200):
            (a @ w).relu_()
        return (time.perf_counter() - t0) * 1000

    work_ms()
    print(f"torch loop alone: {min(work_ms() for _ in range(5)):.0f} ms (best of 5)")
    embedder = Embedder(EmbedderSettings(cache_dir=str(REPO / "data" / "models"), runtime=runtime, num_threads=2))
    embedder.warm_up()
    after = []
    for _ in range(10):
        embedder.embed_queries(["What is the maximum upload size per file?"])
        after.append(work_ms())
    print(f"{runtime}: torch loop right after a query embedding: {', '.join(f'{x:.0f}' for x in after)} ms")
    time.sleep(1)
    print(f"after 1 s idle: {work_ms():.0f} ms")


if __name__ == "__main__":
    main()
