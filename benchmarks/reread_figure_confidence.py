"""Give saved answers their figure confidence, and place its cutoff on development answers.

Answers saved by ``rag-eval --answers`` before the figure-confidence rule carry no token
probabilities. This has the configured ik_llama model read each saved answer again after the prompt
it was written to (rules, the saved sources, the question; a source's label is rebuilt from its
heading path, the file name not being saved) and records what
``rag_app.answering.figure_confidence`` makes of the probabilities: what the answer's generation
would have recorded. Each file is written again beside the original with ``-reread`` in its name.

With ``--dev`` files (re-read or recorded), it places ``answer.min_figure_confidence_en``: the
highest cutoff that withholds at most 1% of their right answers that the other rules let stand,
and reports what that withholds; ``--test`` files are only scored.

    python benchmarks/reread_figure_confidence.py --reread .bench/<set>/answers-<llm>-ctx700-0-0-105.json ...
    python benchmarks/reread_figure_confidence.py --dev <...-reread.json> ... --test <...-reread.json> ...
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from machine import offline_setup  # benchmarks/machine.py (scripts run from this folder)

offline_setup()

from ingest.text_tokenizer import BM25Tokenizer  # noqa: E402
from ingest.types import Chunk  # noqa: E402
from rag_app.answering.figure_confidence import figure_confidence  # noqa: E402
from rag_app.answering.prompt import build_prompt  # noqa: E402
from rag_app.config import Settings, load_settings  # noqa: E402
from rag_app.evaluation.answer_eval import (  # noqa: E402
    AnswerOutcome,
    load_outcomes,
    look_alike_rule,
    recite,
    save_outcomes,
    with_rules,
)
from rag_app.llm import make_llm, model_cache_dir  # noqa: E402
from rag_app.retrieval.results import RetrievedChunk  # noqa: E402


def reread(paths: list[Path], settings: Settings) -> None:
    llm = make_llm(settings.llm, settings.data_dir)
    if not hasattr(llm, "reply_probabilities"):
        raise SystemExit(f"{llm.name} reads no token probabilities (llm.backend: ik_llama does)")
    print(f"model {llm.name}, cache {model_cache_dir(settings.llm, settings.data_dir)}")
    tokenize = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords).tokenize
    for path in paths:
        outcomes = []
        for o in load_outcomes(path):
            if o.sources and o.model_answer and o.refusal not in ("no_evidence", "not_in_sources", "error"):
                chunks = [RetrievedChunk(Chunk(f"saved-{s['number']}", "", f"{_label(s)}.md", str(s["text"]), 0,
                                               section=str(s.get("section") or "")), 0.0, 0.0, 0.0, 0.0, None, None,
                                         0.0) for s in o.sources]
                prompt = build_prompt(o.query or o.question, chunks, o.language, llm.count_tokens, 1_000_000,
                                      settings.answer.table_rows)
                probs = llm.reply_probabilities(prompt.messages, o.model_answer)
                o = replace(o, figure_confidence=figure_confidence(probs, o.query or o.question, tokenize))
            outcomes.append(o)
        out = path.with_name(f"{path.stem}-reread.json")
        save_outcomes(out, outcomes, {"reread_by": llm.name})
        print(f"{out}: {sum(o.figure_confidence is not None for o in outcomes)} of {len(outcomes)} with a figure")


def _label(source: dict) -> str:
    return str(source.get("section") or "document").split(" > ")[0]


def place(dev: list[Path], test: list[Path], settings: Settings, keep: float = 0.99) -> None:
    tokenize = BM25Tokenizer(stem_english=settings.bm25.stem_english, stopwords=settings.bm25.stopwords).tokenize
    answer = settings.answer
    look_alike = look_alike_rule(tokenize, answer.look_alike_margin)
    min_support = answer.infer_min_support if answer.infer_citations else None

    def standing(paths: list[Path]) -> list[AnswerOutcome]:
        # English answers the other default rules let stand, their citations decided as the code stands.
        rows = [recite(o, tokenize, min_support) for p in paths for o in load_outcomes(p)]
        return [o for o in rows if o.language == "en" and not with_rules(
            o, {"en": answer.check.min_yes_en}, answer.refuse_unsupported, answer.refuse_off_question, look_alike).refusal]

    def withheld(rows: list[AnswerOutcome], cutoff: float) -> str:
        counts = {"right": 0, "wrong": 0, "unanswerable": 0}
        totals = dict(counts)
        for o in rows:
            kind = ("right" if o.contained else "wrong") if o.kind == "answerable" else "unanswerable"
            totals[kind] += 1
            counts[kind] += o.figure_confidence is not None and o.figure_confidence < cutoff
        return ", ".join(f"{counts[k]} of {totals[k]} {k}" for k in counts)

    rows = standing(dev)
    right = sorted(o.figure_confidence for o in rows
                   if o.kind == "answerable" and o.contained and o.figure_confidence is not None)
    n_right = sum(o.kind == "answerable" and o.contained for o in rows)
    affordable = int(math.floor((1 - keep) * n_right + 1e-9))  # right answers the cutoff may withhold
    highest = right[affordable] if affordable < len(right) else 1.0
    cutoff = math.floor(highest * 100) / 100  # two decimals, at or below the first right answer it spares
    print(f"development: {len(rows)} answers stand; cutoff {cutoff:.2f} withholds {withheld(rows, cutoff)}")
    for path in test:
        print(f"test {path}: at {cutoff:.2f} withholds {withheld(standing([path]), cutoff)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reread", type=Path, nargs="*", default=[], help="answers files to give figure confidences")
    parser.add_argument("--dev", type=Path, nargs="*", default=[], help="development answers files (pooled)")
    parser.add_argument("--test", type=Path, nargs="*", default=[], help="test answers files to score")
    args = parser.parse_args()
    settings = load_settings(None)
    if args.reread:
        reread(args.reread, settings)
    if args.dev:
        place(args.dev, args.test, settings)


if __name__ == "__main__":
    main()
