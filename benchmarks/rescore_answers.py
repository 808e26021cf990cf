"""Score saved answers again under the current citation and refusal rules, without the LLM.

``rag-eval --answers`` keeps each answer with what the model wrote and the sources it was shown
(since 2026-12-04; older files lack them and are scored as saved). This re-decides every answer's
citations with ``rag_app.answering.citations.resolve_citations`` as the code stands, then applies
the refusal rules (``with_rules``): a change to how citations are matched can be measured on every
saved run in seconds. The answers themselves are the model's, unchanged.

    python benchmarks/rescore_answers.py .bench/rail-en/answers-<llm>-ctx700-0-0-85.json ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

offline_setup()

from ingest.text_tokenizer import BM25Tokenizer  # noqa: E402
from rag_app.cli.eval_tables import answer_table  # noqa: E402
from rag_app.config import load_settings  # noqa: E402
from rag_app.evaluation.answer_eval import load_outcomes, look_alike_rule, recite, summarise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, nargs="+", help="answers files written by rag-eval --answers")
    parser.add_argument("--config", type=Path, default=None, help="config to read the answer settings from")
    args = parser.parse_args()
    settings = load_settings(args.config)
    tokenizer = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords)
    answer = settings.answer
    min_support = answer.infer_min_support if answer.infer_citations else None
    rules = {"cutoff": {"zh": answer.check.min_yes_zh, "en": answer.check.min_yes_en},
             "unsupported": answer.refuse_unsupported, "off_question": answer.refuse_off_question,
             "look_alike": look_alike_rule(tokenizer.tokenize, answer.look_alike_margin),
             "sure": answer.figure_confidence_cutoffs}
    tables = []
    for path in args.answers:
        saved = load_outcomes(path)
        recited = [recite(o, tokenizer.tokenize, min_support) for o in saved]
        kept = sum(bool(o.sources) for o in saved)
        tables.append((f"{path.parent.name} ({kept} of {len(saved)} with sources)", [
            ("as saved, default rules", summarise(saved, **rules)),
            ("recited, default rules", summarise(recited, **rules)),
        ]))
    print(answer_table(tables))


if __name__ == "__main__":
    main()
