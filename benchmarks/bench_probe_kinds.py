"""Which probe questions predict real questions? And how far is the label-free cutoff from the best
one labels would allow?

For a knowledge base that ``rag-eval`` has indexed and queried (its cached candidates of the
labelled in-domain questions and of the ``--ood`` questions), each probe kind gives a cutoff
(the calibration's own choice of score, 95% of the probes kept), and that cutoff is read on the
real questions: in-domain answered, off-topic refused, holes refused. Then the cutoff that labels
would choose (exactly 95% of the in-domain questions answered) shows what the scores allow.

    rag-eval .bench/splits/cmrc2018-trial-topics-in --ood .bench/splits/cmrc2018-trial-topics-out --ood-max 1000 --holes 0.5 --data-root .bench
    python benchmarks/bench_probe_kinds.py .bench/cmrc2018-trial-topics-in [--llm 80]

Probe kinds: ``sentences`` (the default: a sentence taken out of its chunk), ``window`` (60% of a
sentence, left in its chunk: an extractive question), ``llm`` (the configured LLM writes one
question per chunk; about 10-20 s each with the packaged model on 2 cores). Probe candidates are
cached beside the index (``probes-<kind>-<n>.json``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from machine import REPO, offline_setup

offline_setup()
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from rag_app.calibration.calibrate import sample_chunks  # noqa: E402
from rag_app.calibration.collect import deployed_depth, probe_candidates, question_candidates  # noqa: E402
from rag_app.calibration.offtopic import offtopic_questions  # noqa: E402
from rag_app.calibration.probes import make_probes, window_questions, written_probes  # noqa: E402
from rag_app.calibration.relevance import Features, candidate_weights, choose_score  # noqa: E402
from rag_app.config import CalibrationSettings, load_settings  # noqa: E402
from rag_app.evaluation.beir_eval import CandidateSet, QueryCandidates  # noqa: E402
from rag_app.evaluation.refusal import holes_of, reranked  # noqa: E402
from rag_app.retrieval.kb_calibration import RELEVANCE_FEATURES  # noqa: E402
from rag_app.service import RagService  # noqa: E402


def _cached(path: Path, make):  # type: ignore[no-untyped-def]
    if path.is_file():
        return CandidateSet.load(path)
    made = make()
    made.save(path)
    return made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kb_dir", type=Path, help="a knowledge base rag-eval indexed (with --ood) under --data-root")
    p.add_argument("--llm", type=int, default=0, help="also N questions written by the configured LLM")
    p.add_argument("--config")
    args = p.parse_args()
    base = load_settings(args.config, data_dir=args.kb_dir)
    cs = CalibrationSettings()
    service = RagService.open(RagService.effective_settings(base), background=False)
    retriever = service.kb.ready_retriever()
    retriever.kb_calibration = None  # probe with the configured stages, as calibration does
    _, _, bm25 = service.kb.stores()
    depth = deployed_depth(retriever)
    chunks = sample_chunks(retriever, sorted(bm25.ids()), 2 * cs.probes, cs.seed)
    sentence_probes = make_probes(chunks, cs.probes, cs.seed)
    sets = probe_candidates(retriever, sentence_probes)
    kinds: dict[str, CandidateSet] = {"sentences (default)": sets.probes}

    def windows() -> CandidateSet:
        out = question_candidates(retriever, window_questions(sentence_probes, cs.seed), stage="window")
        out.qrels = {p.probe_id: {p.chunk.chunk_id: 1} for p in sentence_probes}  # only the cutoff is read
        return out

    kinds["window of a sentence"] = _cached(args.kb_dir / f"probes-window-{cs.probes}.json", windows)
    if args.llm:
        def written() -> CandidateSet:
            probes = written_probes(chunks, args.llm, service.llm_question_writer(), cs.seed,
                                    lambda stage, done, total: print(f"\r{stage} {done}/{total}", end="", flush=True))
            print()
            return probe_candidates(retriever, probes).probes

        kinds[f"written by the LLM ({base.llm.model})"] = _cached(args.kb_dir / f"probes-llm-{args.llm}.json", written)
    off = question_candidates(retriever, offtopic_questions(cs.offtopic_per_language, cs.seed), stage="offtopic")
    service.close()

    real = CandidateSet.load(next(args.kb_dir.glob("candidates-*-dev-all.json")))
    ood = CandidateSet.load(next(args.kb_dir.glob("candidates-*-ood-*.json")))
    answered_f = Features.of(CandidateSet("real", [QueryCandidates(q.qid, reranked(q.chunks, depth), 0) for q in real.queries]))
    offtopic_f = Features.of(CandidateSet("ood", [QueryCandidates(q.qid, reranked(q.chunks, depth), 0) for q in ood.queries]))
    holes_f = Features.of(holes_of(real, 0.5, depth))

    def vec(weights: dict[str, float]) -> np.ndarray:
        return np.array([weights.get(n, 0.0) for n in RELEVANCE_FEATURES])

    def rates(w: np.ndarray, cutoff: float) -> str:
        return (f"{np.mean(answered_f.best(w) >= cutoff):.1%} / {np.mean(~(offtopic_f.best(w) >= cutoff)):.1%}"
                f" / {np.mean(~(holes_f.best(w) >= cutoff)):.1%}")

    print(f"\n{args.kb_dir.name}: {len(real.queries)} in-domain, {len(ood.queries)} off-topic questions,"
          f" {len(holes_f.best(vec({'dense_score': 1.0})))} holes\n")
    print("| probe kind | probes | chosen score | real answered / off-topic refused / holes refused |")
    print("|---|---:|---|---:|")
    chosen = {}
    for name, probes in kinds.items():
        best, _ = choose_score(probes, sets.holes, off, cs.keep)
        chosen[name] = best
        label = " + ".join(f"{w:.3g}*{n}" for n, w in best.weights.items())
        print(f"| {name} | {len(probes.queries)} | {label} >= {best.min_value:.4g} | {rates(vec(best.weights), best.min_value)} |")
    print("\nWith labels: the cutoff answering exactly 95% of the in-domain questions\n")
    default = vec(chosen["sentences (default)"].weights)
    print(f"- the default's score: {rates(default, float(np.quantile(answered_f.best(default), 0.05)))}")
    options = candidate_weights(Features.of(sets.probes))
    best_w = max(options, key=lambda w: np.mean(~(offtopic_f.best(w) >= np.quantile(answered_f.best(w), 0.05))))
    print(f"- the best candidate score for off-topic refusal: {rates(best_w, float(np.quantile(answered_f.best(best_w), 0.05)))}")


if __name__ == "__main__":
    main()
