"""Place the answer check's cutoffs on development answers, then apply them to test answers.

``rag-eval --answers`` keeps every answer with the check's verdict (the run itself never refuses on
the verdict), so placing a cutoff and measuring it need no new LLM run. The development answers of
one language are pooled (e.g. both English sets) and the rule of
``rag_app.evaluation.answer_eval.place_check_cutoff`` applied: the highest cutoff costing at most 2
points of accuracy and 5% of the right answers, and off (0) where it would refuse no more
unanswerable questions than it costs right answers. Test answers are only scored, never used to choose.

    python benchmarks/place_answer_check.py \\
        --dev .bench/samples-en/answers-<llm>-ctx700-0-0-39.json .bench/handbook-en/answers-<...>-0-0-62.json \\
        --test handbook-en=.bench/handbook-en/answers-<...>-0-38-87.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

offline_setup()

from rag_app.cli.eval_tables import answer_table  # noqa: E402
from rag_app.evaluation.answer_eval import load_outcomes, place_check_cutoff, summarise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", type=Path, nargs="+", required=True, help="development answers files (pooled)")
    parser.add_argument("--test", nargs="*", default=[], metavar="LABEL=FILE", help="test answers files to score")
    parser.add_argument("--max-drop", type=float, default=0.02, help="accuracy the cutoff may cost (share)")
    parser.add_argument("--keep", type=float, default=0.95, help="share of right answers the cutoff keeps")
    parser.add_argument("--apply", nargs="*", default=[], metavar="LANG=CUTOFF",
                        help="score the test answers at these cutoffs instead (e.g. the configured, rounded ones)")
    parser.add_argument("--no-support-rule", action="store_true",
                        help="place as if answer.refuse_unsupported were off")
    parser.add_argument("--no-kind-rule", action="store_true",
                        help="place as if answer.refuse_off_question were off")
    args = parser.parse_args()
    support, kind = not args.no_support_rule, not args.no_kind_rule
    dev = [o for path in args.dev for o in load_outcomes(path)]
    cutoff: dict[str, float] = {}
    for language in ("zh", "en"):
        placement = place_check_cutoff(dev, language, args.max_drop, args.keep, unsupported=support, off_question=kind)
        if placement is not None:
            cutoff[language] = placement.cutoff
            print(f"{language} ({len(args.dev)} development file(s)): {placement.describe()}")
    for item in args.apply:
        language, _, value = item.partition("=")
        cutoff[language] = float(value)
    tables = []
    for item in args.test:
        label, _, path = item.partition("=")
        test = load_outcomes(Path(path))
        rows = [("none", summarise(test)), ("check", summarise(test, cutoff)),
                ("check + support" if support else "check (no support rule)", summarise(test, cutoff, unsupported=support))]
        if kind:
            rows.append(("+ kind" if support else "check + kind",
                         summarise(test, cutoff, unsupported=support, off_question=True)))
        tables.append((label, rows))
    if tables:
        print(f"\nTest answers at the cutoffs {cutoff}\n")
        print(answer_table(tables))


if __name__ == "__main__":
    main()
