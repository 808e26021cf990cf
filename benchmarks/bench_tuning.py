"""Domain adaptation: ``rag-tune`` on each BEIR set's corpus (never its qrels), then ``rag-eval`` on
its dev queries, the tuned reranker against the untuned hybrid pipeline in the same run (paired).

Per set: ``rag-tune run`` (the question writer, chunk sample and questions per chunk given here)
-> its manifest (data sizes, training time, the held-out check, the switch decision) -> ``rag-eval``
with that version switched on (for the measurement only, when the check left it off) -> the
check's decision restored. Each step is its own process (one process per Milvus Lite file).

    python benchmarks/bench_tuning.py ../shared/data/scifact-dev ../shared/data/cmrc2018-trial \\
        --data-root .bench --sample 1500 600 --per-chunk 1 2       # ~1 h 15 min on 2 cores
    python benchmarks/bench_tuning.py ... --reuse                  # the latest stored versions, no training
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model, offline_setup, write_section  # benchmarks/machine.py

REPO = offline_setup()

from rag_app.service import TunedModelStore  # noqa: E402

HEADING = "## Reranker tuning on the corpus (rag-tune)"


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    print(f"  {' '.join(args[:2])}... {time.monotonic() - started:.0f} s, rc {proc.returncode} (log {log})", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}; see {log}")


def tune_and_measure(folder: Path, data_root: Path, sample: int, per_chunk: int, generator: str, reuse: bool,
                     env: dict[str, str]) -> dict:
    name = folder.resolve().name
    data_dir = data_root / name
    store = TunedModelStore(data_dir)
    set_env = {**env, "RAG_TUNING__QUESTIONS_PER_CHUNK": str(per_chunk)}
    if not (reuse and store.versions()):
        print(f"{name}: tuning", flush=True)
        _run(["rag_app.cli.tune", "--data-dir", str(data_dir), "run", "--generator", generator,
              "--sample", str(sample)], set_env, data_root / f"tune-{name}.log")
    model = store.versions()[-1]
    was_active = store.active()
    if was_active is None or was_active.version != model.version:
        store.activate(model.version)  # measured either way; the check's decision is restored below
    try:
        print(f"{name}: rag-eval with {model.version}", flush=True)
        out = data_root / f"eval-tuned-{name}.json"
        _run(["rag_app.cli.evaluate", str(folder), "--data-root", str(data_root), "--json", str(out)], env,
             data_root / f"eval-tuned-{name}.log")
    finally:
        if not model.manifest.get("activated"):
            store.rollback()
    entry = json.loads(out.read_text(encoding="utf-8"))["sets"][name]
    return {"name": name, "manifest": model.manifest, "version": model.version, "eval": entry}


def section(results: list[dict], command: str) -> str:
    lines = [
        HEADING,
        "",
        f"Command: `{command}`; machine: {os.cpu_count()} cores ({cpu_model()}), no GPU.",
        "Training data comes from the corpus only: the qrels are used by `rag-eval` alone, after training.",
        "The untuned pipeline is the `hybrid` row of the same `rag-eval` run (the fused order of the very",
        "candidates the reranker re-ordered), so the gain is paired per query.",
        "",
        "| set | questions (train / held out) | training | held-out nDCG@10: now → tuned (blend) | switched on? |"
        " dev nDCG@10: hybrid → +tuned reranker | gain [95% CI] | ms/query p50 |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    for r in results:
        m, e = r["manifest"], r["eval"]
        d, t, h = m["data"], m["training"], m["held_out"]
        legs = e["legs"]
        gain = e.get("rerank_gain", [float("nan")] * 3)
        lines.append(
            f"| {r['name']} | {d['generator']}: {d['train']} / {d['held_out']} from {d['chunks']} chunks"
            f" | {t['steps']} steps, {t['seconds'] / 60:.1f} min, loss {t['first_loss']:.2f} → {t['last_loss']:.2f}"
            f" | {h['baseline_ndcg@10']:.3f} → {h['baseline_ndcg@10'] + h['gain']:.3f} ({m['blend']:g})"
            f" | {'yes' if m['activated'] else 'no'}"
            f" | {legs['hybrid']['ndcg@10']:.3f} → {legs['hybrid+rerank']['ndcg@10']:.3f}"
            f" | {gain[0]:+.3f} [{gain[1]:+.3f}, {gain[2]:+.3f}] | {legs['hybrid+rerank']['ms_p50']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", type=Path)
    p.add_argument("--data-root", type=Path, default=REPO / ".bench")
    p.add_argument("--sample", type=int, nargs="+", default=[400], help="chunks per set (one value, or one per set)")
    p.add_argument("--per-chunk", type=int, nargs="+", default=[1], help="questions per chunk (idem)")
    p.add_argument("--generator", choices=["llm", "sentence"], default="sentence")
    p.add_argument("--reuse", action="store_true", help="evaluate the latest stored version where there is one")
    p.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = p.parse_args()
    n = len(args.datasets)
    samples = args.sample * n if len(args.sample) == 1 else args.sample
    per_chunk = args.per_chunk * n if len(args.per_chunk) == 1 else args.per_chunk
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("RAG_EMBEDDER__CACHE_DIR", str(REPO / "data" / "models"))
    results = [
        tune_and_measure(folder, args.data_root.resolve(), s, k, args.generator, args.reuse, env)
        for folder, s, k in zip(args.datasets, samples, per_chunk)
    ]
    text = section(results, "python benchmarks/bench_tuning.py " + " ".join(sys.argv[1:]))
    print(text)
    write_section(args.out, HEADING, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
