"""``rag-eval DATASET_DIR...``: retrieval quality of the real pipeline on BEIR-format folders.

Each set is indexed into its own knowledge base under ``--data-root/<name>`` (chunking included;
idempotent, so a second run only queries), every judged query runs once through the hybrid
retriever with the threshold off, and chunk hits map back to BEIR documents. The candidates are
cached as JSON beside the index so ``--calibrate`` and ``--tune-fusion`` can be re-run in seconds.

    rag-eval ../shared/data/scifact-dev ../shared/data/cmrc2018-trial --calibrate --tune-fusion

With several sets, ``--calibrate`` uses the other sets' questions as out-of-domain questions
for each one (or give ``--ood FOLDER``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ingest.beir import is_beir_dir, load_queries
from rag_app.config import RetrievalSettings, Settings
from rag_app.evaluation.beir_eval import (
    DEFAULT_DEPTH,
    RERANK_LEG,
    CandidateSet,
    evaluate_candidates,
    leg_run,
    legs_of,
    paired_bootstrap,
    per_query_ndcg,
)
from rag_app.evaluation.calibration import THRESHOLDABLE, StageCalibration, calibrate, calibrate_stage, plot
from rag_app.evaluation.fusion_tuning import FusionCheck, FusionSetting, best_leg, check_fusion, tune
from rag_app.evaluation.refusal import CutoffRule, RefusalResult, holes_of, refusal
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.service import NotEnoughToCalibrate, RagService, stored_calibration

from . import evaluate_answers
from .common import add_common_options, ingest_progress, load_cli_settings, open_service, progress_bar
from .eval_tables import calibration_table, fusion_table, kb_fusion_table, legs_table, refusal_table

log = logging.getLogger("rag_app.eval")

def _kb_settings(base: Settings, data_root: Path, name: str) -> Settings:
    """The project's settings with this set's own data directory (and the reranker rag-tune switched
    on there, if any: it is part of the candidates' cache key); the model cache stays shared."""
    return RagService.effective_settings(
        base.model_copy(
            update={
                "data_dir": data_root / name,
                "embedder": base.embedder.model_copy(update={"cache_dir": str(base.embedder_cache_dir.resolve())}),
            }
        )
    )


def _ingest(service: RagService, folder: Path) -> None:
    bar = progress_bar(f"indexing {folder.name}", "doc")
    report = service.ingest_corpus(folder, ingest_progress(bar))
    bar.close()
    print(
        f"{folder.name}: {len(report.indexed)} documents indexed, {len(report.unchanged)} already indexed,"
        f" {len(report.failed)} failed; {report.chunks_added} chunks added"
    )


def _collect(service: RagService, folder: Path, args: argparse.Namespace) -> CandidateSet:
    """The folder's judged queries through the retriever; with ``--kb``, against that knowledge base's
    own index, its qrels naming its chunks (``/api/kbs/{kb}/feedback/export``)."""
    bar = progress_bar(f"queries {folder.name}", "q")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(1)

    cands = service.evaluate(folder, max_queries=args.max_queries, depth=args.depth, split=args.split,
                             progress=progress, by_chunk=bool(args.kb))
    bar.close()
    return cands


def _candidates_key(settings: Settings, depth: int) -> str:
    """Cached candidates are valid only for the settings that produced them (fusion, reranker,
    embedder, chunking, BM25); the threshold and top_k do not matter (evaluation turns them off)."""
    relevant = {
        "depth": depth,
        "retrieval": settings.retrieval.model_dump(exclude={"threshold", "top_k", "dense_top_k", "bm25_top_k"}),
        "embedder": settings.embedder.model_dump(exclude={"cache_dir", "batch_size"}),
        "chunker": settings.chunker.model_dump(),
        "bm25": settings.bm25.model_dump(),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _ood_queries(own: Path, others: Sequence[Path], limit: int) -> dict[str, str]:
    """A seeded sample of the other sets' questions (never this set's own)."""
    pool: dict[str, str] = {}
    for other in others:
        if other.resolve() == own.resolve():
            continue
        pool.update({f"{other.name}:{qid}": text for qid, text in load_queries(other).items()})
    keys = sorted(pool)
    random.Random(0).shuffle(keys)
    return {k: pool[k] for k in keys[:limit]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rag-eval", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("datasets", nargs="+", type=Path, help="BEIR-format folders (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--data-root", type=Path, help="one knowledge base per set under here (default: <data_dir>/eval)")
    p.add_argument("--split", default="dev", help="qrels split (default dev)")
    p.add_argument("--max-queries", type=int, help="first N judged queries per set")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="candidates per leg (default 100, for Recall@100)")
    p.add_argument("--refresh", action="store_true", help="re-run the queries even if cached candidates exist")
    p.add_argument("--calibrate", action="store_true", help="score distributions per stage and a recommended cutoff")
    p.add_argument("--keep", type=float, default=0.95, help="share of relevant evidence the cutoff must keep")
    p.add_argument("--ood", type=Path, action="append", default=[],
                   help="BEIR folder whose questions are out of domain")
    p.add_argument("--ood-max", type=int, default=300, help="out-of-domain questions per set (seeded sample)")
    p.add_argument("--plot-dir", type=Path, help="where the calibration PNGs go (default: the set's data dir)")
    p.add_argument("--tune-fusion", action="store_true", help="grid over fusion method, weights and depth")
    p.add_argument("--holes", type=float, metavar="FRACTION",
                   help="refusal check: remove the judged documents of this seeded share of the questions and"
                        " count how many of those questions are refused")
    p.add_argument("--recalibrate", action="store_true",
                   help="re-run the knowledge base's own calibration even if it is current")
    p.add_argument("--seed", type=int, default=0, help="seed of the --holes sample")
    p.add_argument("--json", type=Path, help="also write every number here")
    evaluate_answers.add_options(p)
    add_common_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 < args.keep <= 1:
        print("rag-eval: --keep must be in (0, 1]", file=sys.stderr)
        return 1
    if args.holes is not None and not 0 < args.holes <= 1:
        print("rag-eval: --holes must be in (0, 1]", file=sys.stderr)
        return 1
    if args.answers is not None:
        if args.answers < 0:
            print("rag-eval: --answers must be >= 0", file=sys.stderr)
            return 1
        base = load_cli_settings(args)
        data_root = (args.data_root or base.data_dir / "eval").resolve()
        return evaluate_answers.run(args, lambda name: _kb_settings(base, data_root, name))
    bad = [str(d) for d in args.datasets + args.ood if not is_beir_dir(d)]
    if bad:
        print(f"rag-eval: not a BEIR folder (corpus.jsonl + queries.jsonl): {', '.join(bad)}", file=sys.stderr)
        return 1
    if args.kb and args.holes is not None:
        print("rag-eval: --holes removes documents: it runs on evaluation copies, not on --kb", file=sys.stderr)
        return 1
    base = load_cli_settings(args)
    data_root = (args.data_root or base.data_dir / "eval").resolve()
    retrieval = base.retrieval
    deploy_depth = max(retrieval.dense_top_k, retrieval.bm25_top_k)
    if args.depth < deploy_depth:
        print(f"rag-eval: --depth {args.depth} is below the configured top-k ({deploy_depth})", file=sys.stderr)
        return 1

    legs: list[tuple[str, dict[str, dict[str, float]]]] = []
    cals: list[tuple[str, list[StageCalibration]]] = []
    sets: list[CandidateSet] = []
    oods: list[CandidateSet | None] = []
    refusals: list[tuple[str, list[RefusalResult]]] = []
    kb_fusions: list[FusionCheck] = []
    want_ood = args.calibrate or bool(args.ood)
    want_refusal = args.holes is not None or bool(args.ood)
    dump: dict[str, Any] = {"settings": retrieval.model_dump(), "sets": {}}
    ood_sources = args.ood or args.datasets
    for folder in args.datasets:
        name = folder.resolve().name
        # --kb: the knowledge base itself is evaluated (nothing indexed); else one copy per set.
        settings = RagService.effective_settings(base) if args.kb else _kb_settings(base, data_root, name)
        cache_dir = settings.kb_dir / "eval" / name if args.kb else settings.data_dir
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = _candidates_key(settings, args.depth)
        cache = cache_dir / f"candidates-{key}-{args.split}-{args.max_queries or 'all'}.json"
        ood_key = hashlib.sha256("\x00".join(sorted(str(o.resolve()) for o in ood_sources)).encode()).hexdigest()[:8]
        ood_cache = cache_dir / f"candidates-{key}-ood-{ood_key}-{args.ood_max}.json"
        cands, ood = _load_cached(cache), (_load_cached(ood_cache) if want_ood else None)
        cal = stored_calibration(settings)
        need_kb = (args.refresh or cands is None or (want_ood and ood is None) or args.recalibrate
                   or (cal is None and (want_refusal or args.tune_fusion)))
        if not need_kb:
            print(f"{name}: using cached candidates {cache} (--refresh to re-run the queries)")
        else:
            service = open_service(settings, "rag-eval")
            if service is None:
                return 2
            try:
                if not args.kb:
                    _ingest(service, folder)
                cal = _calibrate(service, name, force=args.recalibrate)
                if args.refresh or cands is None:
                    cands = _collect(service, folder, args)
                    cands.save(cache)
                if want_ood and (args.refresh or ood is None):
                    queries = _ood_queries(folder, ood_sources, args.ood_max)
                    if queries:
                        ood = service.evaluate_queries(queries, args.depth)
                        ood.dataset = "ood"
                        ood.save(ood_cache)
            finally:
                service.close()
        assert cands is not None
        sets.append(cands)
        oods.append(ood if ood is not None and ood.queries else None)
        result = evaluate_candidates(cands)
        legs.append((name, result))
        entry: dict[str, Any] = {"legs": result, "queries": len(cands.queries)}
        leg_name, _ = best_leg(cands)
        entry["better_leg"] = leg_name
        if cands.reranked:
            gain = paired_bootstrap(per_query_ndcg(leg_run(cands, RERANK_LEG), cands),
                                    per_query_ndcg(leg_run(cands, "hybrid"), cands))
            entry["rerank_gain"] = gain
            print(f"{name}: reranker ({settings.retrieval.reranker.model}, blend {settings.retrieval.reranker.blend:g})"
                  f" nDCG@10 over hybrid {gain[0]:+.3f}, 95% interval [{gain[1]:+.3f}, {gain[2]:+.3f}]")
        if cal is not None:
            kb_fusions.append(_kb_fusion_check(cands, cal, retrieval, deploy_depth))
            entry["kb_calibration"] = cal.model_dump()
            entry["kb_fusion"] = dataclasses.asdict(kb_fusions[-1])
        if want_refusal:
            holes = holes_of(cands, args.holes, deploy_depth, args.seed) if args.holes else None
            rules = [CutoffRule.fixed(retrieval.threshold.score, retrieval.threshold.min_value, retrieval.fusion)]
            if cal is not None:
                rules.append(CutoffRule.calibrated(cal, retrieval.fusion))
            refused = [refusal(r, cands, ood, holes, deploy_depth, retrieval.top_k) for r in rules]
            refusals.append((name, refused))
            entry["refusal"] = [r.as_dict() for r in refused]
        if args.calibrate:
            if ood is None or not ood.queries:
                print(f"{name}: no out-of-domain questions (give --ood or a second set); refusal not measured")
                ood = None
            stage_cals, raw = calibrate(cands, ood, keep=args.keep, depth=deploy_depth, top_k=retrieval.top_k)
            cals.append((name, stage_cals))
            png = plot(name, stage_cals, raw, (args.plot_dir or settings.data_dir) / f"calibration-{name}.png")
            print(f"{name}: calibration plot {png}")
            entry["calibration"] = [c.as_dict() for c in stage_cals]
        dump["sets"][name] = entry

    print(f"\nRetrieval quality ({', '.join(legs_of(sets[0]))}; threshold off, {args.depth} candidates per leg)\n")
    print(legs_table(legs))
    if cals:
        print(f"\nThreshold calibration (cutoff keeps >= {args.keep:.0%} of the questions' best relevant chunk;"
              f" answer set = top {retrieval.top_k} above the cutoff)\n")
        print(calibration_table(cals))
        shared = _print_recommendation(cals, retrieval.threshold.score)
        if shared is not None:
            stage, cutoff = shared
            rows = [
                (cands.dataset,
                 [calibrate_stage(stage, cands, ood, args.keep, deploy_depth, retrieval.top_k, cutoff)[0]])
                for cands, ood in zip(sets, oods)
            ]
            dump["shared_threshold"] = {
                "score": stage, "min_value": cutoff, "sets": {n: c[0].as_dict() for n, c in rows}
            }
            print(f"\nAt the shared cutoff {stage} >= {cutoff:.4f} (the configured value is"
                  f" {retrieval.threshold.score} >= {retrieval.threshold.min_value})\n")
            print(calibration_table(rows))
    if kb_fusions:
        print("\nFusion per knowledge base (chosen by its calibration from probe questions; replayed on the"
              " labelled questions at the configured depth)\n")
        print(kb_fusion_table(kb_fusions))
    if refusals:
        print(f"\nRefusal: shipped threshold and each knowledge base's own cutoff (answer set = top"
              f" {retrieval.top_k} above the cutoff; holes = --holes {args.holes})\n")
        print(refusal_table(refusals))
    if args.tune_fusion:
        results = tune(sets)
        dump["fusion"] = [
            {"setting": r.setting.as_config(), "ndcg@10": r.ndcg, "gain": r.gain} for r in results
        ]
        print("\nFusion settings, best first (by the smallest gain over a set's better single leg)\n")
        print(fusion_table(results, top=12))
        if results:
            print("\nrecommended retrieval settings:", json.dumps(results[0].setting.as_config()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dump, indent=2, default=float), encoding="utf-8")
    return 0


def _load_cached(path: Path) -> CandidateSet | None:
    """Cached candidates, or None when missing or written by another version (collected again)."""
    try:
        return CandidateSet.load(path) if path.is_file() else None
    except (ValueError, KeyError, TypeError) as exc:
        log.info("ignoring %s: %s", path, exc)
        return None


def _calibrate(service: RagService, name: str, *, force: bool) -> KnowledgeBaseCalibration | None:
    """The knowledge base's own calibration: re-run when forced or stale, else the stored one."""
    try:
        cal = service.calibrate() if force else service.calibrate_if_stale()
    except NotEnoughToCalibrate as exc:
        print(f"{name}: not calibrated ({exc})")
        return None
    if cal is not None:
        print(f"{name}: calibrated in {cal.seconds:.0f} s: {cal.score_label} >= {cal.min_value:.4g}; {cal.fusion_note}")
    return service.calibration.current


def _kb_fusion_check(cands: CandidateSet, cal: KnowledgeBaseCalibration, retrieval: RetrievalSettings,
                     depth: int) -> FusionCheck:
    """The calibrated fusion on the labelled questions against the better single leg."""
    chosen = cal.fusion or retrieval.fusion
    return check_fusion(cands, FusionSetting.of(chosen, depth), FusionSetting.of(retrieval.fusion, depth))


def _print_recommendation(cals: list[tuple[str, list[StageCalibration]]], configured: str) -> tuple[str, float] | None:
    """The configured score's cutoff per set; with several sets, the lowest of them (it keeps the
    recall target on every set) as the shared value, returned so its refusal can be re-scored."""
    chosen = configured if configured in THRESHOLDABLE else "dense_margin"
    cutoffs = {name: c.cutoff for name, stage in cals for c in stage if c.stage == chosen and not math.isnan(c.cutoff)}
    print()
    for name, cutoff in cutoffs.items():
        print(f"{name}: recommended threshold {{score: {chosen}, min_value: {cutoff:.4f}}}")
    if len(cutoffs) < 2:
        return None
    shared = min(cutoffs.values())
    print(f"all sets: recommended threshold {{score: {chosen}, min_value: {shared:.4f}}}")
    return chosen, shared


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
