"""Does weighting the probes to the style of the questions asked place a better cutoff?

For each knowledge base: the default calibration (sentence probes) against the one the app makes
once questions were asked (``rag_app.calibration.question_style``: sentence probes and their windows
weighted to the asked questions' styles). The asked questions are a seeded sample of the set's own
questions (answerable and not, as a team would ask them), of which only those the default cutoff
answers count, as in the app; every rate is read on the *other* questions, which the weighting
never saw. Averaged over seeds.

    rag-eval .bench/splits/cmrc2018-trial-topics-in --ood .bench/splits/cmrc2018-trial-topics-out --ood-max 1000 --holes 0.5 --data-root .bench
    python benchmarks/bench_asked_style.py .bench/cmrc2018-trial-topics-in          # a rag-eval'd BEIR split
    python benchmarks/bench_asked_style.py --answer-set benchmarks/answer_sets/bank-en --data-root .bench

Probe and question candidates are cached beside the index (``style-*.json``).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

from machine import REPO, offline_setup

offline_setup()
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag_app.calibration.calibrate import sample_chunks  # noqa: E402
from rag_app.calibration.collect import probe_candidates, question_candidates  # noqa: E402
from rag_app.calibration.offtopic import offtopic_questions  # noqa: E402
from rag_app.calibration.probes import make_probes, window_questions  # noqa: E402
from rag_app.calibration.question_style import probes_like_asked  # noqa: E402
from rag_app.calibration.relevance import Features, ScoreChoice, choose_score  # noqa: E402
from rag_app.config import CalibrationSettings, Settings, load_settings  # noqa: E402
from rag_app.evaluation.beir_eval import CandidateSet, QueryCandidates  # noqa: E402
from rag_app.evaluation.refusal import holes_of, reranked  # noqa: E402
from rag_app.retrieval.kb_calibration import RELEVANCE_FEATURES  # noqa: E402
from rag_app.retrieval.results import best_keyword_coverage  # noqa: E402
from rag_app.service import RagService  # noqa: E402

CS = CalibrationSettings()


def _cached(path: Path, make: Callable[[], CandidateSet]) -> CandidateSet:
    if path.is_file():
        return CandidateSet.load(path)
    made = make()
    made.save(path)
    return made


def kb_settings(kb_dir: Path) -> Settings:
    """The project's settings on ``kb_dir``, the embedder's model cache shared (as rag-eval's)."""
    base = load_settings(None)
    return RagService.effective_settings(base.model_copy(update={
        "data_dir": kb_dir,
        "embedder": base.embedder.model_copy(update={"cache_dir": str(base.embedder_cache_dir.resolve())}),
    }))


def probe_sets(kb_dir: Path, extra: dict[str, str] | None = None) -> dict[str, CandidateSet]:
    """Sentence probes, their holes, their windows, the off-topic pool (and ``extra`` questions)."""
    names = ["sentences", "holes", "windows", "offtopic"] + (["asked"] if extra else [])
    paths = {n: kb_dir / f"style-{n}.json" for n in names}
    if all(p.is_file() for p in paths.values()):
        return {n: CandidateSet.load(p) for n, p in paths.items()}
    service = RagService.open(kb_settings(kb_dir), background=False)
    try:
        retriever = service.kb.ready_retriever()
        retriever.kb_calibration = None  # probe with the configured stages, as calibration does
        _, _, bm25 = service.kb.stores()
        chunks = sample_chunks(retriever, sorted(bm25.ids()), 2 * CS.probes, CS.seed)
        probes = make_probes(chunks, CS.probes, CS.seed)
        sets = probe_candidates(retriever, probes)
        out = {"sentences": sets.probes, "holes": sets.holes,
               "windows": question_candidates(retriever, window_questions(probes, CS.seed), stage="windows"),
               "offtopic": question_candidates(retriever, offtopic_questions(CS.offtopic_per_language, CS.seed))}
        if extra:
            out["asked"] = question_candidates(retriever, extra, stage="asked")
    finally:
        service.close()
    for n, s in out.items():
        s.save(paths[n])
    return out


def _jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _vec(weights: dict[str, float]) -> np.ndarray:
    return np.array([weights.get(n, 0.0) for n in RELEVANCE_FEATURES])


def answered(questions: list[QueryCandidates], choice: ScoreChoice) -> np.ndarray:
    return Features.of(CandidateSet("q", questions)).best(_vec(choice.weights)) >= choice.min_value


def compare(name: str, sets: dict[str, CandidateSet], answerable: list[QueryCandidates],
            refusable: dict[str, list[QueryCandidates]], asked_pool: list[QueryCandidates],
            asked_n: int, seeds: int) -> None:
    default, _ = choose_score(sets["sentences"], sets["holes"], sets["offtopic"], CS.keep)
    rows: dict[str, list[list[float]]] = {"default": [], "asked": []}
    for seed in range(seeds):
        asked_qs = random.Random(seed).sample(asked_pool, min(asked_n, len(asked_pool) // 2))
        seen = {id(q) for q in asked_qs}
        styles = [s for q, ok in zip(asked_qs, answered(asked_qs, default)) if ok
                  and (s := best_keyword_coverage(q.chunks)) is not None]
        weighted, _ = choose_score(probes_like_asked(sets["sentences"], sets["windows"], styles, seed),
                                   sets["holes"], sets["offtopic"], CS.keep)
        unseen = [q for q in answerable if id(q) not in seen]
        for label, choice in (("default", default), ("asked", weighted)):
            rows[label].append([float(np.mean(answered(unseen, choice)))] + [
                float(np.mean(~answered([q for q in qs if id(q) not in seen], choice))) for qs in refusable.values()
            ])

    def cells(label: str) -> str:
        m = np.mean(rows[label], axis=0)
        return " | ".join(f"{100 * v:.1f}%" for v in m) + f" | {100 * min(r[0] for r in rows[label]):.1f}%"

    print(f"| {name} | default | {cells('default')} |")
    print(f"| {name} | weighted to {asked_n} asked | {cells('asked')} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kb_dir", type=Path, nargs="?", help="a BEIR knowledge base rag-eval indexed with --ood and --holes")
    p.add_argument("--answer-set", type=Path, help="an English answer set (documents.txt, answers.jsonl) instead")
    p.add_argument("--data-root", type=Path, default=REPO / ".bench")
    p.add_argument("--asked", type=int, default=40, help="questions asked before the weighting (default 40)")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    if args.answer_set is not None:
        folder = args.answer_set
        kb_dir = args.data_root / folder.name
        service = RagService.open(kb_settings(kb_dir), background=False)
        try:
            service.sync_folder(folder / (folder / "documents.txt").read_text(encoding="utf-8").strip())
        finally:
            service.close()
        questions = {j["_id"]: j["text"] for j in _jsonl(folder / "queries.jsonl")}
        gold = {j["_id"]: j["answers"] for j in _jsonl(folder / "answers.jsonl")}
        sets = probe_sets(kb_dir, questions)
        real = sets["asked"].queries
        answerable = [q for q in real if gold.get(q.qid)]
        compare(folder.name, sets, answerable, {"unanswerable": [q for q in real if not gold.get(q.qid)]},
                real, args.asked, args.seeds)
        return
    kb_dir = args.kb_dir
    sets = probe_sets(kb_dir)
    real = CandidateSet.load(next(kb_dir.glob("candidates-*-dev-all.json")))
    ood = CandidateSet.load(next(kb_dir.glob("candidates-*-ood-*.json")))
    retrieval = load_settings(None, data_dir=kb_dir).retrieval
    depth = max(retrieval.dense_top_k, retrieval.bm25_top_k)  # the deployed depth, as calibration scores
    in_domain = [QueryCandidates(q.qid, reranked(q.chunks, depth), 0) for q in real.queries]
    off = [QueryCandidates(q.qid, reranked(q.chunks, depth), 0) for q in ood.queries]
    holes = holes_of(real, 0.5, depth).queries
    compare(kb_dir.name, sets, in_domain, {"same-language off-topic": off, "holes": holes},
            in_domain + off, args.asked, args.seeds)


if __name__ == "__main__":
    main()
