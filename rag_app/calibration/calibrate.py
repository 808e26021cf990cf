"""Calibrate one knowledge base: probes and off-topic questions in, a stored cutoff and fusion out.

Cost: one retrieval per probe and per off-topic question, plus one embedding per probe's
evidence (BENCHMARKS.md, "Refusal on the same language"). The retriever keeps serving meanwhile;
the result replaces the previous calibration in one assignment.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime

from ingest.types import Chunk
from rag_app.config import CalibrationSettings
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.retrieval.pipeline import HybridRetriever

from .collect import Progress, deployed_depth, probe_candidates, question_candidates
from .fusion_choice import choose_fusion
from .offtopic import offtopic_questions
from .probes import QuestionWriter, make_probes, window_questions, written_probes
from .question_style import probes_like_asked
from .relevance import choose_score

log = logging.getLogger(__name__)
PROBE_KIND = "inverse cloze: a sentence taken out of its chunk"
ASKED_PROBE_KIND = (
    "inverse cloze and sentence windows, weighted to the style of {n} questions asked"
)
LLM_PROBE_KIND = "questions written by the LLM"


class NotEnoughToCalibrate(ValueError):
    """The knowledge base is too small (or its chunks too short) to calibrate: the fallback
    threshold stays in use. The message says why."""


def sample_chunks(retriever: HybridRetriever, chunk_ids: Sequence[str], n: int, seed: int) -> list[Chunk]:
    """Up to ``n`` chunks drawn (seeded) from ``chunk_ids``, with their text."""
    ids = sorted(chunk_ids)
    picked = ids if len(ids) <= n else random.Random(seed).sample(ids, n)
    chunks: list[Chunk] = []
    for start in range(0, len(picked), 256):
        found = retriever.dense.vectors.fetch(picked[start:start + 256])
        chunks.extend(chunk for chunk, _ in found.values())
    return chunks


def calibrate_knowledge_base(
    retriever: HybridRetriever,
    chunk_ids: Sequence[str],
    settings: CalibrationSettings,
    progress: Progress | None = None,
    write_question: QuestionWriter | None = None,
    keyword_scoring: str = "",
    asked_styles: Sequence[float] = (),
) -> KnowledgeBaseCalibration:
    """Probe, score, choose. Raises :class:`NotEnoughToCalibrate` for a knowledge base too small.
    ``write_question``: the configured LLM's question writer, for ``probe_writer: llm``;
    ``keyword_scoring``: the retriever's (``kb_calibration.keyword_scoring``), stored with the result;
    ``asked_styles``: the styles of questions asked (``best_keyword_coverage``): with at least
    ``settings.asked_questions_min`` of them, sentence probes and their windows are weighted to
    follow them."""
    t0 = time.perf_counter()
    if len(chunk_ids) < settings.min_chunks:
        raise NotEnoughToCalibrate(
            f"{len(chunk_ids)} chunks, calibration needs at least {settings.min_chunks}"
        )
    # Twice as many chunks as probes wanted: some have no sentence fit to ask.
    chunks = sample_chunks(retriever, chunk_ids, 2 * settings.probes, settings.seed)
    if settings.probe_writer == "llm" and write_question is not None:
        probes = written_probes(chunks, settings.llm_probes, write_question, settings.seed, progress)
        kind = LLM_PROBE_KIND
    else:
        if settings.probe_writer == "llm":
            log.warning("calibration.probe_writer is llm but no LLM was given: sentence probes instead")
        probes = make_probes(chunks, settings.probes, settings.seed)
        kind = PROBE_KIND
    if len(probes) < settings.min_probes:
        raise NotEnoughToCalibrate(
            f"{len(probes)} probe questions could be made from {len(chunks)} chunks,"
            f" calibration needs at least {settings.min_probes}"
        )
    sets = probe_candidates(retriever, probes, progress)
    pool = offtopic_questions(settings.offtopic_per_language, settings.seed)
    offtopic = question_candidates(retriever, pool, progress, stage="offtopic")
    choice, _ = choose_score(sets.probes, sets.holes, offtopic, settings.keep)
    unweighted, asked = choice, 0
    if kind == PROBE_KIND and settings.asked_questions_min and len(asked_styles) >= settings.asked_questions_min:
        windows = question_candidates(retriever, window_questions(probes, settings.seed), progress, stage="windows")
        like_asked = probes_like_asked(sets.probes, windows, asked_styles, settings.seed)
        choice, _ = choose_score(like_asked, sets.holes, offtopic, settings.keep)
        asked, kind = len(asked_styles), ASKED_PROBE_KIND.format(n=len(asked_styles))
    fusion, note, _ = choose_fusion(sets.probes, deployed_depth(retriever))
    calibration = KnowledgeBaseCalibration(
        weights=choice.weights,
        min_value=choice.min_value,
        fusion=fusion,
        computed_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        seconds=time.perf_counter() - t0,
        chunks=len(chunk_ids),
        probes=len(probes),
        probe_kind=kind,
        offtopic=len(pool),
        keep_target=settings.keep,
        probes_answered=choice.probes_answered,
        offtopic_refused=choice.offtopic_refused,
        holes_refused=choice.holes_refused,
        auc=choice.auc,
        fusion_note=note,
        keyword_scoring=keyword_scoring,
        asked_questions=asked,
        probe_weights=unweighted.weights if asked else None,
        probe_min_value=unweighted.min_value if asked else None,
    )
    log.info(
        "calibrated %d chunks in %.0f s: %s >= %.4g answers %.0f%% of probes, refuses %.0f%% off-topic, %.0f%% holes",
        len(chunk_ids), calibration.seconds, calibration.score_label, calibration.min_value,
        100 * choice.probes_answered, 100 * choice.offtopic_refused, 100 * choice.holes_refused,
    )
    return calibration
