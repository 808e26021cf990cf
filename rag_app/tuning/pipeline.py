"""One tuning run: questions -> hard negatives -> JSONL -> training -> held-out check -> switch.

The model is stored as a new version whatever the outcome (its manifest says why it is or is not
active); it is switched on only when the held-out questions rank better with it, by at least
``tuning.min_gain`` nDCG@10, unless the caller says otherwise.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rag_app.config import TuningSettings
from rag_app.tuning.held_out import HeldOutResult, evaluate_held_out
from rag_app.tuning.negatives import mine_hard_negatives
from rag_app.tuning.questions import (
    GeneratedQuery,
    LLMQuestionWriter,
    QueryWriter,
    SentenceQueryWriter,
    generate_queries,
    sample_chunks,
)
from rag_app.tuning.trainer import CrossEncoderTrainer, TrainingSummary
from rag_app.tuning.training_data import TrainingExample, read_jsonl, split_by_document, write_jsonl

if TYPE_CHECKING:
    from rag_app.llm.base import LLMBackend
    from rag_app.retrieval.protocols import SearchableKnowledgeBase

log = logging.getLogger(__name__)

# (stage, done, total, detail); stages: sample, questions, negatives, train, check, save
TuneProgress = Callable[[str, int, int, str], None]
Activation = Literal["if-better", "always", "never"]


class TuningError(RuntimeError):
    """A run that could not produce a model (no chunks, no questions, no negatives...)."""


@dataclass
class TuneReport:
    dataset: Path
    generator: str
    chunks: int = 0
    questions: int = 0
    train_examples: int = 0
    held_out_examples: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    training: TrainingSummary | None = None
    held_out: HeldOutResult | None = None
    version: str = ""
    activated: bool = False
    decision: str = ""

    def lines(self) -> list[str]:
        out = [
            f"training data: {self.dataset} ({self.generator}: {self.questions} questions from {self.chunks} chunks;"
            f" {self.train_examples} for training, {self.held_out_examples} held out)",
        ]
        if self.training:
            t = self.training
            out.append(
                f"training: {t.steps}/{t.total_steps} steps in {t.seconds:.0f} s on {t.device}, loss {t.first_loss:.3f}"
                f" -> {t.last_loss:.3f}" + (" (stopped at the time limit)" if t.stopped_at_time_limit else "")
            )
        if self.held_out:
            h = self.held_out
            blends = ", ".join(f"{b:g}: {v:.3f}" for b, v in h.by_blend.items())
            out.append(
                f"held-out nDCG@10 ({h.queries} questions): current pipeline {h.baseline_ndcg:.3f};"
                f" with the new reranker by blend {blends}; gain {h.gain:+.3f}"
                f" [{h.gain_ci[0]:+.3f}, {h.gain_ci[1]:+.3f}]"
            )
        out.append(f"model {self.version}: {self.decision}")
        out.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()))
        return out


def _writer(settings: TuningSettings, llm: Callable[[], LLMBackend] | None) -> QueryWriter:
    if settings.generator == "llm":
        if llm is None:
            raise TuningError("tuning.generator is 'llm' but no LLM is configured")
        return LLMQuestionWriter(llm(), settings.questions_per_chunk)
    return SentenceQueryWriter(settings.questions_per_chunk, settings.seed)


def _queries_for(examples: list[TrainingExample]) -> list[GeneratedQuery]:
    """A user's labelled examples without negatives, as queries to mine negatives for."""
    return [GeneratedQuery(ex.query, ex.pos_id, ex.doc_id, ex.pos[0], ex.generator or "user") for ex in examples]


class VersionStore(Protocol):
    """Where trained versions go (the application's tuned-model store): one folder per version."""

    def new_version_dir(self) -> Path: ...

    def write_manifest(self, path: Path, manifest: dict[str, Any]) -> None: ...

    def discard(self, path: Path) -> None: ...

    def activate(self, version: str) -> Any: ...


def run_tuning(
    kb: SearchableKnowledgeBase,
    settings: TuningSettings,
    *,
    store: VersionStore,
    llm: Callable[[], LLMBackend] | None = None,
    data: Path | None = None,
    activation: Activation = "if-better",
    progress: TuneProgress | None = None,
) -> TuneReport:
    """Tune a reranker on ``kb``'s own chunks (or on a JSONL in ``data``) and keep it in ``store``;
    see the module doc."""
    assert kb.retriever is not None, "call kb.warm_up() first"
    def report(stage: str, done: int, total: int, detail: str = "") -> None:
        if progress:
            progress(stage, done, total, detail)

    started = time.monotonic()
    budget_s = settings.max_minutes * 60
    root = kb.settings.kb_dir / "tuned"
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    seconds: dict[str, float] = {}

    # --- training data ------------------------------------------------------------------------
    if data is not None:
        examples = read_jsonl(data)
        generator, n_chunks, n_questions = "user", 0, len(examples)
        lacking = [ex for ex in examples if len(ex.neg) < settings.negatives]
        if lacking:
            t = time.monotonic()
            mined = mine_hard_negatives(kb, _queries_for(lacking), settings.negatives, settings.skip_top,
                                        settings.mine_depth, settings.seed,
                                        progress=lambda d, n: report("negatives", d, n))
            examples = [ex for ex in examples if len(ex.neg) >= settings.negatives] + mined
            seconds["negatives"] = time.monotonic() - t
        dataset = data
    else:
        t = time.monotonic()
        report("sample", 0, settings.sample_chunks, "sampling chunks")
        chunks = sample_chunks(kb, settings.sample_chunks, settings.seed)
        report("sample", len(chunks), len(chunks), f"{len(chunks)} chunks")
        if len(chunks) < 4:
            raise TuningError(f"only {len(chunks)} usable chunks in the knowledge base: index more documents first")
        writer = _writer(settings, llm)
        generation_deadline = started + 0.5 * budget_s  # leave at least half the budget for training
        queries = generate_queries(
            chunks, writer,
            progress=lambda d, n: report("questions", d, n, f"{writer.name} questions"),
            should_stop=lambda: time.monotonic() > generation_deadline,
        )
        seconds["questions"] = time.monotonic() - t
        if not queries:
            raise TuningError(f"the {writer.name} generator wrote no usable question for {len(chunks)} chunks")
        t = time.monotonic()
        examples = mine_hard_negatives(kb, queries, settings.negatives, settings.skip_top, settings.mine_depth,
                                       settings.seed, progress=lambda d, n: report("negatives", d, n))
        seconds["negatives"] = time.monotonic() - t
        generator, n_chunks, n_questions = writer.name, len(chunks), len(queries)
        dataset = root / "datasets" / f"{stamp}-{generator}.jsonl"
        write_jsonl(dataset, examples)
    train, held_out = split_by_document(examples, settings.held_out_fraction, settings.seed)
    if not train or not held_out:
        raise TuningError(f"{len(examples)} usable examples: too few to both train and check (need questions"
                          " about at least two documents)")
    result = TuneReport(dataset, generator, n_chunks, n_questions, len(train), len(held_out), seconds)

    # --- training -----------------------------------------------------------------------------
    base_model = settings.base_model or kb.embedder.model_path
    trainer = CrossEncoderTrainer(settings, base_model, root / "reranker-work")
    remaining = budget_s - (time.monotonic() - started)
    t = time.monotonic()
    result.training = trainer.train(
        train,
        progress=lambda s, n, loss: report("train", s, n, f"loss {loss:.3f}"),
        time_limit_s=max(60.0, 0.85 * remaining),  # the rest is for the held-out check
    )
    seconds["train"] = time.monotonic() - t
    trainer.merge_with_base(settings.merge_alpha)
    version_dir = store.new_version_dir()
    try:
        trainer.save(version_dir)
        # --- does it help? ------------------------------------------------------------------------
        t = time.monotonic()
        candidate = kb.settings.retrieval.reranker.model_copy(
            update={"enabled": True, "model": str(version_dir), "max_tokens": settings.max_tokens}
        )
        result.held_out = evaluate_held_out(kb, held_out, candidate, settings.blends,
                                            progress=lambda d, n: report("check", d, n, "held-out questions"))
        seconds["check"] = time.monotonic() - t
    except BaseException:
        store.discard(version_dir)
        raise
    result.version = version_dir.name
    gain = result.held_out.gain
    if activation == "never":
        result.decision = "stored, not switched on (--activate never)"
    elif activation == "always" or gain >= settings.min_gain:
        result.activated = True
        result.decision = "switched on" + (" (--activate always)" if activation == "always" and gain < settings.min_gain
                                          else f": held-out nDCG@10 {gain:+.3f} >= {settings.min_gain}")
    else:
        result.decision = (f"stored, not switched on: held-out nDCG@10 {gain:+.3f} is below the"
                           f" {settings.min_gain} needed (the current pipeline stays)")
    store.write_manifest(version_dir, _manifest(result, settings, base_model))
    if result.activated:
        store.activate(version_dir.name)
    seconds["total"] = time.monotonic() - started
    report("save", 1, 1, result.decision)
    return result


def _manifest(r: TuneReport, s: TuningSettings, base_model: str) -> dict[str, Any]:
    h = r.held_out
    assert h is not None and r.training is not None
    return {
        "kind": "cross-encoder reranker",
        "created": datetime.now().isoformat(timespec="seconds"),
        "base_model": base_model,
        "layers": s.layers,
        "max_tokens": s.max_tokens,
        "blend": h.best_blend,
        "merge_alpha": s.merge_alpha,
        "data": {"file": str(r.dataset), "generator": r.generator, "chunks": r.chunks, "questions": r.questions,
                 "train": r.train_examples, "held_out": r.held_out_examples},
        "training": r.training.to_dict(),
        "held_out": {"queries": h.queries, "baseline_ndcg@10": h.baseline_ndcg, "by_blend": h.by_blend,
                     "gain": h.gain, "gain_ci95": list(h.gain_ci)},
        "activated": r.activated,
        "decision": r.decision,
    }
