"""What ingestion costs besides the embedding model: ``Indexer.ingest_paths`` over a folder with a
model-free hashing embedder (``tests/support/fakes.py``), into fresh data directories (Milvus Lite,
BM25, the registry), so code changes to the stores and the registry show without the model's noise.

    python benchmarks/bench_pipeline_overhead.py FOLDER                      # this tree
    python benchmarks/bench_pipeline_overhead.py FOLDER --repo /path/to/old  # another checkout (a
                                                                             # git worktree), same FOLDER

FOLDER: e.g. the corpus ``bench_ingest.py`` writes (``.bench/ingest/overhead/corpus``, 90 files).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))  # that checkout's ingest/ and rag_app/
    warnings.filterwarnings("ignore")
    from rag_app.config import Settings
    from rag_app.service import KnowledgeBase
    from tests.support.fakes import HashingEmbedder

    times = []
    for _ in range(args.rounds):
        kb = KnowledgeBase(Settings(data_dir=Path(tempfile.mkdtemp())), embedder=HashingEmbedder(dim=384)).warm_up()
        t = time.perf_counter()
        report = kb.indexer.ingest_paths([args.folder])
        times.append(time.perf_counter() - t)
        kb.close()
    print(f"{args.repo}: {len(report.indexed)} files, {report.chunks_added} chunks; seconds per round:",
          " ".join(f"{t:.2f}" for t in times), "(the first round loads jieba)")


if __name__ == "__main__":
    main()
