"""First look at the relevance threshold: in-domain questions that keep a relevant chunk, and
out-of-domain questions (the other set's) that are refused.

Needs the corpora already indexed by ``benchmarks/bench_retrieval.py`` under ``--data-root``.
    python benchmarks/bench_refusal.py --data-root .bench --sample 150
"""
from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import numpy as np

from ingest.beir import corpus_id_of, load_qrels, load_queries
from ingest.settings import EmbedderSettings
from rag_app.config import RetrievalSettings, Settings, ThresholdSettings
from rag_app.knowledge_base import KnowledgeBase

SETS = {"scifact-dev": Path("../shared/data/scifact-dev"), "cmrc2018-trial": Path("../shared/data/cmrc2018-trial")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=".bench")
    parser.add_argument("--models-dir", default="data/models")
    parser.add_argument("--sample", type=int, default=150, help="questions drawn per set (seeded)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(0)
    print("| index | threshold | in-domain: relevant chunk in the answer set | out-of-domain refused | relevant chunks' margin, 5th pct |")
    print("|---|---|---:|---:|---:|")
    for name, folder in SETS.items():
        other = next(o for o in SETS if o != name)
        qrels, queries = load_qrels(folder), load_queries(folder)
        in_domain = rng.sample([q for q in queries if q in qrels], args.sample)
        foreign = load_queries(SETS[other])
        out_domain = rng.sample(sorted(foreign), args.sample)
        embedder = EmbedderSettings(cache_dir=str(Path(args.models_dir).resolve()))
        kb = KnowledgeBase(Settings(data_dir=Path(args.data_root) / name, embedder=embedder)).warm_up()
        th = kb.settings.retrieval.threshold
        unfiltered = kb.retriever.__class__(
            RetrievalSettings(threshold=ThresholdSettings(score="none")),
            kb.embedder, kb.vectors, kb.bm25, kb.tokenizer,
            reference_cache_dir=kb.embedder_cache_dir / "calibration",
        )
        kept = kept_unfiltered = 0
        margins = []
        for q in in_domain:
            relevant = [c for c in unfiltered.run(queries[q]).chunks if corpus_id_of(c.source) in qrels[q]]
            if relevant:
                kept_unfiltered += 1
                margins.append(max(c.dense_margin for c in relevant))
            kept += any(corpus_id_of(c.source) in qrels[q] for c in kb.retriever.run(queries[q]).chunks)
        refused = sum(not kb.retriever.run(foreign[q]).has_evidence for q in out_domain)
        n = args.sample
        print(
            f"| {name} | {th.score} >= {th.min_value} | {kept / n:.0%} (without threshold {kept_unfiltered / n:.0%})"
            f" | {refused / n:.0%} ({other} questions) | {np.quantile(margins, 0.05):.3f} |",
            flush=True,
        )
        kb.close()


if __name__ == "__main__":
    main()
