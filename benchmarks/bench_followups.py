"""Follow-ups: does the query made from an elliptical follow-up ("那住宿呢？", "And Enterprise?")
retrieve the chunk that answers it? Four ways of making the query, side by side on the judged set
``benchmarks/answer_sets/followups.jsonl`` over ``samples/``, with the configured LLM:

* ``followup_alone``: the follow-up as typed;
* ``llm_unchecked``: the LLM's standalone rewrite as it comes (the app before the checks);
* ``llm_checked``: the rewrite when it passes ``rag_app.answering.followup``'s checks, else joined;
* ``combined``: the previous question joined with the follow-up (no LLM call).

    python benchmarks/bench_followups.py [--data-dir .bench/samples-followups] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from machine import REPO, cpu_model, offline_setup

offline_setup()
sys.path.insert(0, str(REPO))

from rag_app.config import load_settings  # noqa: E402
from rag_app.evaluation.followups import METHODS, hit_rate, load_followups, run_followups  # noqa: E402
from rag_app.service import RagService  # noqa: E402

PAIRS = REPO / "benchmarks" / "answer_sets" / "followups.jsonl"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=REPO / ".bench" / "samples-followups")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    settings = load_settings(None, data_dir=args.data_dir)
    service = RagService.open(settings, background=False)
    try:
        service.sync_folder(REPO / "samples")
        service.calibrate_if_stale()  # as the app does on start-up: the per-knowledge-base cutoff
        pairs = load_followups(PAIRS)
        rows, dump = [], {}
        for method in METHODS:
            t0 = time.perf_counter()
            results = run_followups(service.answerer, pairs, method)
            seconds = (time.perf_counter() - t0) / len(pairs)
            rows.append((method, hit_rate(results, "zh"), hit_rate(results, "en"), hit_rate(results), seconds))
            dump[method] = [asdict(r) for r in results]
        llm = service.answerer.get_llm().name
    finally:
        service.close()
    zh = sum(p.language == "zh" for p in pairs)
    print(f"\n{len(pairs)} follow-ups ({zh} zh, {len(pairs) - zh} en) over samples/; LLM {llm}; {cpu_model()}\n")
    print("| query made by | zh: right chunk retrieved | en | all | s per follow-up (query + retrieval) |")
    print("|---|---:|---:|---:|---:|")
    for method, z, e, a, s in rows:
        print(f"| {method} | {z:.1%} | {e:.1%} | {a:.1%} | {s:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"llm": llm, "results": dump}, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
