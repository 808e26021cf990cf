"""Answer quality and latency against the prompt budget (``answer.context_tokens``): the same
development samples through ``rag-eval --answers`` once per budget, side by side.

Every quoted token costs prefill time on CPU, so the budget should stop where quality stops
improving. Only development samples are used here (offset 0: where the answer check's cutoff was
placed); the chosen budget is then checked once on the test samples (README, "Measuring answer
quality"). The table is printed (BENCHMARKS.md, "Prompt budget", quotes it with the choice made).

    python benchmarks/bench_prompt_budget.py                        # 400, 700, 1000, 1500 tokens
    python benchmarks/bench_prompt_budget.py --budgets 700,1500 --reuse   # runs already made are kept

Each run is a separate ``rag-eval`` process (the budget set through RAG_ANSWER__CONTEXT_TOKENS, as
a user would), so one run's prompt cache never helps the next.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()
SPLITS = ".bench/splits/cmrc2018-trial-topics"
# (label, rag-eval arguments): development samples only.
SETS = {
    "cmrc2018 dev": [f"{SPLITS}-in", "--answers", "60", "--answer-holes", "20", "--answer-offtopic", "0"],
    "samples-en dev": ["benchmarks/answer_sets/samples-en", "--answers", "14", "--answer-holes", "14",
                       "--answer-offtopic", "0"],
    "handbook-en dev": ["benchmarks/answer_sets/handbook-en", "--answers", "28", "--answer-holes", "10",
                        "--answer-offtopic", "0"],
}


def run_one(label: str, budget: int, out: Path, reuse: bool) -> dict:
    path = out / f"{label.replace(' ', '-')}-{budget}.json"
    if not (reuse and path.is_file()):
        env = {**os.environ, "RAG_ANSWER__CONTEXT_TOKENS": str(budget)}
        cmd = ["rag-eval", *SETS[label], "--answer-offset", "0", "--data-root", ".bench", "--json", str(path)]
        print(f"{label}, {budget} tokens: {' '.join(cmd)}", file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    (figures,) = json.loads(path.read_text()).values()
    return figures


def row(label: str, budget: int, figures: dict) -> str:
    plain, default = figures["rules_off"], figures["check_and_support"]
    answerable = default["answerable"]
    return (
        f"| {label} | {budget} | {plain['answerable']['accuracy']:.1%} | {plain['answerable']['f1']:.2f}"
        f" | {answerable['accuracy']:.1%} | {answerable['refused']:.1%} | {default['unanswerable_refused']:.1%}"
        f" | {answerable['citation_precision']:.1%} | {figures['check_on']['check_auc']:.2f}"
        f" | {answerable['check_p50_s']:.2f} | {answerable['first_token_p50_s']:.2f} | {answerable['total_p50_s']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="400,700,1000,1500", help="comma-separated context_tokens values")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    parser.add_argument("--out", default=str(REPO / ".bench" / "prompt-budget"), help="where each run's JSON goes")
    parser.add_argument("--reuse", action="store_true", help="keep a run whose JSON is already there")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = [int(b) for b in args.budgets.split(",")]
    lines = [
        "| sample | context tokens | accuracy, no refusal rule | F1, no rule | accuracy, default rules"
        " | answerable refused | unanswerable refused | citation precision | check AUC | check p50 s"
        " | first token p50 s | total p50 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in args.sets.split(","):
        for budget in budgets:
            lines.append(row(label, budget, run_one(label, budget, out, args.reuse)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
