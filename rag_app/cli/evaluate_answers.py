"""``rag-eval --answers N``: answer quality through the whole answerer (see
``rag_app.evaluation.answer_eval``), one knowledge base per folder.

A folder is a BEIR folder with ``answers.jsonl``, or the same without ``corpus.jsonl`` but with
``documents.txt`` naming a folder of ordinary documents (relative to it; qrels name file names).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag_app.config import Settings
from rag_app.evaluation.answer_eval import (
    AnswerCase,
    AnswerOutcome,
    answer_cases,
    look_alike_rule,
    place_check_cutoff,
    save_outcomes,
    summarise,
)

from .common import ingest_progress, open_service, progress_bar
from .eval_tables import answer_table

DOCUMENTS_FILE = "documents.txt"


def documents_folder(folder: Path) -> Path | None:
    """The document folder a ``documents.txt`` names, or None for a BEIR corpus."""
    pointer = folder / DOCUMENTS_FILE
    if not pointer.is_file():
        return None
    return (folder / pointer.read_text(encoding="utf-8").strip()).resolve()


def problems(folders: list[Path]) -> list[str]:
    out = []
    for folder in folders:
        if not (folder / "answers.jsonl").is_file():
            out.append(f"{folder}: no answers.jsonl")
        elif not (folder / "corpus.jsonl").is_file() and not (folder / DOCUMENTS_FILE).is_file():
            out.append(f"{folder}: neither corpus.jsonl nor {DOCUMENTS_FILE}")
    return out


def run(args: argparse.Namespace, settings_for: Any) -> int:
    """Every folder of ``args.datasets``: ingest, sample, answer, print the table (and JSON)."""
    bad = problems(args.datasets)
    if bad:
        print("rag-eval: " + "; ".join(bad), file=sys.stderr)
        return 1
    holes = args.answer_holes if args.answer_holes is not None else args.answers // 2
    offtopic = args.answer_offtopic if args.answer_offtopic is not None else args.answers // 2
    dump: dict[str, Any] = {}
    tables: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    for folder in args.datasets:
        name = folder.resolve().name
        settings: Settings = settings_for(name)
        ood = args.ood[0] if args.ood else None
        try:
            cases = answer_cases(folder, answerable=args.answers, holes=holes, offtopic_folder=ood,
                                 offtopic=offtopic if ood is not None else 0, split=args.split, seed=args.seed,
                                 offset=args.answer_offset)
        except ValueError as exc:
            print(f"rag-eval: {exc}", file=sys.stderr)
            return 1
        service = open_service(settings, "rag-eval")
        if service is None:
            return 2
        try:
            bar = progress_bar(f"indexing {name}", "doc")
            docs = documents_folder(folder)
            if docs is not None:
                service.sync_folder(docs, ingest_progress(bar))
            else:
                service.ingest_corpus(folder, ingest_progress(bar))
            bar.close()
            service.calibrate_if_stale()
            outcomes = _answer_all(service, name, cases)
            tokenize = service.kb.tokenizer.tokenize  # the answerer's own
            cutoff = {"zh": service.answerer.settings.check.min_yes_zh,
                      "en": service.answerer.settings.check.min_yes_en}
            llm = service.answerer.get_llm().name
        finally:
            service.close()
        out = outcomes_path(settings, llm, args.seed, args.answer_offset, len(cases))
        before = summarise(outcomes)
        checked = summarise(outcomes, cutoff)
        after = summarise(outcomes, cutoff, unsupported=True)
        look_alike = look_alike_rule(tokenize, settings.answer.look_alike_margin)
        kind = summarise(outcomes, cutoff, unsupported=True, off_question=True, look_alike=look_alike)
        unsure = summarise(outcomes, cutoff, unsupported=True, off_question=True, look_alike=look_alike,
                           sure=settings.answer.figure_confidence_cutoffs)
        save_outcomes(out, outcomes, {"llm": llm, "cutoff": cutoff})
        print(f"{name}: {len(outcomes)} questions answered with {llm}; every answer in {out}")
        tables.append((name, [("none", before), ("check", checked), ("check + support", after),
                              ("check + support + kind", kind), ("check + support + kind + sure", unsure)]))
        support, off_question = settings.answer.refuse_unsupported, settings.answer.refuse_off_question
        placed = [p for p in (place_check_cutoff(outcomes, lang, unsupported=support, off_question=off_question,
                                                 look_alike=look_alike if off_question else None)
                              for lang in ("zh", "en")) if p]
        dump[name] = {"llm": llm, "cutoff": cutoff, "rules_off": before, "check_on": checked,
                      "check_and_support": after, "check_support_and_kind": kind,
                      "check_support_kind_and_sure": unsure, "outcomes": str(out),
                      "check_placement": {p.language: {**asdict(p), "cutoff": p.cutoff} for p in placed}}
        if not math.isnan(before["check_auc"]):
            print(f"{name}: the answer check's verdict ranks answerable questions above the others with"
                  f" AUC {before['check_auc']:.3f} (questions that reached the check)")
        for placement in placed:
            print(f"{name}: answer check placed on these answers (use only on a development sample):"
                  f" {placement.describe()}")
        _print_examples(outcomes)
    print("\nAnswer quality, same answers under each refusal rule (none; the answer check at the configured"
          " cutoff; that and withholding answers no quoted passage backs; and answers off the question or"
          " with a look-alike figure; and answers whose figure the model was unsure of: all four, the default)\n")
    print(answer_table(tables))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dump, indent=2, default=_nan_to_none), encoding="utf-8")
    return 0


def _answer_all(service: Any, name: str, cases: list[AnswerCase]) -> list[AnswerOutcome]:
    bar = progress_bar(f"answers {name}", "q", total=len(cases))
    try:
        outcomes: list[AnswerOutcome] = service.evaluate_answers(cases, lambda _: bar.update(1))
    finally:
        bar.close()
    return outcomes


def _print_examples(outcomes: list[AnswerOutcome], n: int = 3) -> None:
    wrong = [o for o in outcomes if o.kind != "answerable" and not o.refusal][:n]
    for o in wrong:
        print(f"  answered a {o.kind} question: {o.question[:60]!r} -> {o.answer[:80]!r}")


def _nan_to_none(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("answer quality (--answers)")
    g.add_argument("--answers", type=int, metavar="N",
                   help="instead of retrieval: N answerable questions through the whole answerer with the"
                        " configured LLM (the folder needs answers.jsonl)")
    g.add_argument("--answer-holes", type=int, metavar="N", help="questions with their evidence removed (default N/2)")
    g.add_argument("--answer-offtopic", type=int, metavar="N",
                   help="questions from the first --ood folder, which should be refused (default N/2)")
    g.add_argument("--answer-offset", type=int, default=0, metavar="K",
                   help="skip the first K of each seeded sample (a development sample at 0, a test one past it)")


def outcomes_path(settings: Settings, llm: str, seed: int, offset: int, count: int) -> Path:
    # The model and the prompt budget in the name: runs that compare them must not overwrite each other.
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", llm)
    return Path(settings.data_dir) / (
        f"answers-{model}-ctx{settings.answer.context_tokens}-{seed}-{offset}-{count}.json")
