"""``rag-tune``: train a reranker on the knowledge base's own documents; list, switch, roll back.

    rag-tune run [--generator llm|sentence] [--data FILE.jsonl] [--activate if-better|always|never]
    rag-tune status
    rag-tune activate VERSION | rollback | off
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_app.service import ModelStoreError, TunedModelStore
from rag_app.tuning.pipeline import TuningError
from rag_app.tuning.training_data import TrainingDataError

from .common import add_common_options, load_cli_settings, open_service, progress_bar

PROG = "rag-tune"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="generate questions, mine negatives, train, check, switch on if better")
    run.add_argument("--generator", choices=["llm", "sentence"], help="question writer (default: tuning.generator)")
    run.add_argument("--data", type=Path, help="train on this FlagEmbedding JSONL ({query, pos, neg}) instead"
                     " (also: resume an interrupted run with the file it saved)")
    run.add_argument("--sample", type=int, help="chunks to write questions for (default: tuning.sample_chunks)")
    run.add_argument("--max-minutes", type=float, help="time budget (default: tuning.max_minutes)")
    run.add_argument("--layers", type=int, help="encoder layers of the reranker (default: tuning.layers)")
    run.add_argument("--epochs", type=int, help="passes over the training data (default: tuning.epochs)")
    run.add_argument("--activate", choices=["if-better", "always", "never"], default="if-better",
                     help="switch the new model on: if the held-out check shows a gain (default), always, never")
    sub.add_parser("status", help="tuned models, their held-out results, and which one is on")
    act = sub.add_parser("activate", help="switch a stored version on")
    act.add_argument("version", help="e.g. v0002 or its full folder name")
    sub.add_parser("rollback", help="back to the version that was on before the current one")
    sub.add_parser("off", help="use no tuned model (versions stay stored)")
    return p


def _status(store: TunedModelStore) -> None:
    active = store.active()
    versions = store.versions()
    if not versions:
        print("no tuned models yet: rag-tune run")
        return
    for m in versions:
        h = m.manifest.get("held_out", {})
        d = m.manifest.get("data", {})
        mark = "*" if active and m.version == active.version else " "
        print(f"{mark} {m.version}  held-out nDCG@10 {h.get('baseline_ndcg@10', float('nan')):.3f} ->"
              f" {h.get('baseline_ndcg@10', 0) + h.get('gain', 0):.3f} (blend {m.blend:g});"
              f" {d.get('train', '?')} training questions ({d.get('generator', '?')})")
    print("active:", active.version if active else "none (the configured reranker, if any)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_cli_settings(args)
    store = TunedModelStore(settings.kb_dir)
    try:
        if args.command == "status":
            _status(store)
            return 0
        if args.command == "activate":
            print(f"active: {store.activate(args.version).version}")
            return 0
        if args.command == "rollback":
            previous = store.rollback()
            print(f"active: {previous.version if previous else 'none'}")
            return 0
        if args.command == "off":
            store.deactivate()
            print("active: none")
            return 0
    except ModelStoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1

    overrides = {k: v for k, v in {"generator": args.generator, "sample_chunks": args.sample,
                                   "max_minutes": args.max_minutes, "layers": args.layers,
                                   "epochs": args.epochs}.items() if v is not None}
    tuning = settings.tuning.model_copy(update=overrides)
    service = open_service(settings, PROG)
    if service is None:
        return 2
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int, detail: str) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = progress_bar(stage, "step")
        bar.total = total
        bar.n = done
        bar.set_postfix_str(detail, refresh=True)

    try:
        report = service.run_tuning(tuning, data=args.data, activation=args.activate, progress=progress)
    except (TuningError, TrainingDataError, ModelStoreError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        for bar in bars.values():
            bar.close()
        service.close()
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
