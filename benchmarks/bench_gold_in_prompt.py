"""Does the prompt quote the passage that holds the answer? For every answerable question of the
English answer sets (``benchmarks/answer_sets/*``: gold answers copied verbatim from the documents),
retrieval as the app runs it (each set its own knowledge base, calibrated), then the sources that fit
the prompt budget: is one of them a chunk containing a gold answer, and at which rank. No LLM; a
few minutes, most of it indexing.

    python benchmarks/bench_gold_in_prompt.py --data-root .bench/gold samples-en handbook-en library-en council-en

Use a fresh ``--data-root`` to measure a change of indexing (an existing knowledge base keeps the
chunks it was indexed with until its files are indexed again).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from machine import REPO, cpu_model, offline_setup

offline_setup()
sys.path.insert(0, str(REPO))

from rag_app.answering.language import detect_language  # noqa: E402
from rag_app.answering.prompt import build_prompt  # noqa: E402
from rag_app.cli.common import open_service  # noqa: E402
from rag_app.cli.evaluate import _kb_settings  # noqa: E402
from rag_app.cli.evaluate_answers import documents_folder  # noqa: E402
from rag_app.config import load_settings  # noqa: E402
from rag_app.evaluation.answer_eval import contains_gold, load_answers  # noqa: E402
from rag_app.llm.base import approx_token_count  # noqa: E402

SETS = REPO / "benchmarks" / "answer_sets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", help="answer set names under benchmarks/answer_sets")
    parser.add_argument("--data-root", type=Path, required=True, help="one knowledge base per set under it")
    args = parser.parse_args()
    base = load_settings()
    budget = base.answer.context_tokens
    print(f"# gold passage in the prompt ({budget}-token budget); {cpu_model()}")
    print("| set | answerable | passed the threshold | gold in the prompt | gold at rank 1 | MRR |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.sets:
        folder = SETS / name
        golds = {qid: a for qid, a in load_answers(folder).items() if a}
        with open(folder / "queries.jsonl", encoding="utf-8") as fh:
            queries = {row["_id"]: row["text"] for row in map(json.loads, filter(str.strip, fh))}
        service = open_service(_kb_settings(base, args.data_root, name), "bench-gold")
        if service is None:
            raise SystemExit(2)
        try:
            docs = documents_folder(folder)
            assert docs is not None, f"{folder} has no documents folder"
            service.sync_folder(docs, None)
            service.calibrate_if_stale()
            passed = in_prompt = first = 0
            reciprocal = 0.0
            for qid, gold in sorted(golds.items()):
                question = queries[qid]
                language = detect_language(question)
                result = service.kb.retriever.run(question)
                if not result.has_evidence:
                    continue
                passed += 1
                prompt = build_prompt(question, result.chunks, language, approx_token_count, budget,
                                      base.answer.table_rows)
                ranks = [s.number for s in prompt.sources if contains_gold(s.chunk.text, gold, language)]
                if ranks:
                    in_prompt += 1
                    first += ranks[0] == 1
                    reciprocal += 1 / ranks[0]
        finally:
            service.close()
        n = len(golds)
        print(f"| {name} | {n} | {passed} | {in_prompt} ({in_prompt / n:.1%}) | {first} ({first / n:.1%})"
              f" | {reciprocal / n:.3f} |")


if __name__ == "__main__":
    main()
