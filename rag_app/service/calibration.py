"""Keeps the knowledge base's calibration current: loads it, re-runs it when the corpus changed
materially (in the background: questions keep the previous cutoff until the new one is swapped
in), runs it by hand, and reports it for the Status tab.

"Materially" is ``calibration.recalibrate_share`` of the chunks the calibration saw, counting
chunks added and removed since (and, across restarts, the change in the chunk count). A
calibration measured under other keyword scoring (``bm25`` settings changed, e.g. its idf) is
stale too: the relevance score it chose mixes in the BM25 coverage.

It also keeps the style of each on-topic question (a number: ``best_keyword_coverage``; never the
question) and calibrates again once ``calibration.asked_questions_min`` were asked, and each time
their number doubles, so that the cutoff follows how this team asks.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from rag_app.calibration.calibrate import NotEnoughToCalibrate, calibrate_knowledge_base
from rag_app.calibration.collect import Progress
from rag_app.calibration.probes import QuestionWriter
from rag_app.config import Settings
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration, keyword_scoring
from rag_app.retrieval.results import RetrievalResult

from .calibration_store import CalibrationStore
from .jobs import Job, JobRecorder, start_in_thread
from .knowledge_base import KnowledgeBase

log = logging.getLogger(__name__)
SAVE_STYLES_EVERY = 10  # asked questions between writes of their styles to the state database


class CalibrationKeeper:
    def __init__(
        self,
        kb: KnowledgeBase,
        settings: Settings,
        *,
        background: bool,
        question_writer: Callable[[], QuestionWriter] | None = None,
        recorder: JobRecorder | None = None,
    ) -> None:
        """``question_writer`` builds the LLM's question writer when ``probe_writer: llm`` needs it."""
        self.kb = kb
        self.question_writer = question_writer
        self.recorder = recorder
        self.settings = settings.calibration
        self.threshold = settings.retrieval.threshold
        self.keyword_scoring = keyword_scoring(settings.bm25)
        self.automatic = background and self.settings.automatic
        self._changed = 0  # chunks added + removed since the calibration in use
        self._job: Job | None = None
        self._lock = threading.Lock()
        self._running = threading.Lock()  # one calibration at a time, by hand or in the background
        self.last_error = ""
        self._asked: deque[float] = deque(maxlen=self.settings.asked_styles_kept)
        self._unsaved = 0
        if kb.calibrations is not None:
            self._asked.extend(kb.calibrations.load_asked_styles())

    # --- state ------------------------------------------------------------------------------------
    def _store(self) -> CalibrationStore:
        if self.kb.calibrations is None:
            raise RuntimeError("the knowledge base is not warmed up (KnowledgeBase.warm_up)")
        return self.kb.calibrations

    def follow(self) -> None:
        """Start using a calibration another replica stored since (looked for every few seconds)."""
        if self.kb.calibrations is None:
            return
        try:
            newer = self.kb.calibrations.newer()
        except Exception as exc:  # the database is away: keep answering with the calibration in use
            log.warning("could not look for a newer calibration: %s", exc)
            return
        if newer is not None:
            self.kb.ready_retriever().kb_calibration = newer
            with self._lock:
                self._changed = 0
            log.info("now using the calibration another replica stored (%s >= %.4g)",
                     newer.score_label, newer.min_value)

    @property
    def current(self) -> KnowledgeBaseCalibration | None:
        return self.kb.ready_retriever().kb_calibration

    @property
    def job(self) -> Job | None:
        """The latest calibration job of this process, running or finished."""
        return self._job

    def _chunks(self) -> int:
        _, _, bm25 = self.kb.stores()
        return len(bm25)

    def changed_share(self) -> float | None:
        """Chunks changed since the calibration in use, as a share of what it saw (None: none yet)."""
        cal = self.current
        if cal is None:
            return None
        changed = max(self._changed, abs(self._chunks() - cal.chunks))
        return changed / max(cal.chunks, 1)

    def scored_otherwise(self) -> bool:
        """The calibration in use was measured under other keyword scoring than the retriever's."""
        cal = self.current
        return cal is not None and cal.keyword_scoring != self.keyword_scoring

    def is_stale(self) -> bool:
        """No calibration yet (and enough chunks for one), the corpus changed materially, or the
        keyword scoring changed."""
        if self._chunks() < self.settings.min_chunks:
            return False
        if self.scored_otherwise():
            return True
        share = self.changed_share()
        return share is None or share > self.settings.recalibrate_share

    # --- changes ----------------------------------------------------------------------------------
    def start_if_stale(self) -> Job | None:
        """On start-up: calibrate in the background when there is none or it is stale."""
        if self.automatic and self.is_stale():
            return self.start()
        return None

    def corpus_changed(self, chunks: int) -> Job | None:
        """After an upload, sync or delete that added or removed ``chunks`` chunks."""
        with self._lock:
            self._changed += max(chunks, 0)
        return self.start_if_stale()

    # --- asked questions ----------------------------------------------------------------------------
    @property
    def asked_styles(self) -> list[float]:
        with self._lock:
            return list(self._asked)

    def question_retrieved(self, result: RetrievalResult) -> Job | None:
        """A question was asked: its style is kept when it is on topic (it reaches the sentence
        probes' own cutoff, whatever cutoff is in use: ``KnowledgeBaseCalibration.on_topic``).
        Starts a background calibration when enough were asked since the one in use
        (:meth:`style_due`)."""
        style = result.keyword_coverage
        if not self.settings.asked_questions_min or not result.on_topic or style is None:
            return None
        with self._lock:
            self._asked.append(float(style))
            self._unsaved += 1
            asked = len(self._asked)
            snapshot = list(self._asked) if self._unsaved >= SAVE_STYLES_EVERY else None
            if snapshot is not None:
                self._unsaved = 0
        if snapshot is not None:
            self._save_styles(snapshot)
        return self.start() if self.automatic and self.style_due(asked) else None

    def style_due(self, asked: int) -> bool:
        """Enough questions asked to weight the probes to their style: at least
        ``asked_questions_min``, and twice as many as the calibration in use was weighted with."""
        cal = self.current
        if cal is None or self.settings.probe_writer != "sentences" or asked < self.settings.asked_questions_min:
            return False
        return asked >= 2 * cal.asked_questions if cal.asked_questions else True

    def flush(self) -> None:
        """Write the styles not yet stored (on shutdown)."""
        with self._lock:
            snapshot = list(self._asked) if self._unsaved else None
            self._unsaved = 0
        if snapshot is not None:
            self._save_styles(snapshot)

    def _save_styles(self, styles: list[float]) -> None:
        try:
            self._store().save_asked_styles(styles)
        except Exception as exc:  # the database is away: they are kept in memory and written later
            log.warning("could not store the asked questions' styles: %s", exc)

    # --- running ----------------------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> KnowledgeBaseCalibration:
        """Calibrate now (blocking), store the result beside the index and start using it.
        Raises :class:`NotEnoughToCalibrate` (the fallback threshold stays) for a tiny corpus."""
        _, _, bm25 = self.kb.stores()
        with self._running:
            with self._lock:
                changed_before = self._changed
            writer = (
                self.question_writer() if self.settings.probe_writer == "llm" and self.question_writer else None
            )
            calibration = calibrate_knowledge_base(
                self.kb.ready_retriever(), sorted(bm25.ids()), self.settings, progress, writer,
                keyword_scoring=self.keyword_scoring, asked_styles=self.asked_styles,
            )
            self._store().save(calibration)  # with the index: every replica uses it
            self.kb.ready_retriever().kb_calibration = calibration  # one assignment: queries switch whole
            with self._lock:
                self._changed -= changed_before  # changes made while it ran still count
            return calibration

    def start(self) -> Job:
        """Calibrate in a background thread (one at a time: a running job is returned instead)."""
        with self._lock:
            if self._job is not None and self._job.running:
                return self._job
            job = self._job = Job("calibration", stage="starting")

        def body(job: Job) -> None:
            def progress(stage: str, done: int, total: int) -> None:
                job.progress(stage, done, total)

            try:
                cal = self.run(progress)
            except NotEnoughToCalibrate as exc:
                job.report = [f"not calibrated: {exc}; the fallback threshold stays in use"]
                self.last_error = str(exc)
                return
            self.last_error = ""
            job.value = cal
            job.report = [f"{cal.score_label} >= {cal.min_value:.4g}", cal.fusion_note]

        return start_in_thread(job, body, "calibration", self.recorder)

    # --- reporting --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What the Status tab and ``/api/status`` show about the refusal cutoff."""
        cal = self.current
        th = self.threshold
        fallback = f"{th.score} >= {th.min_value}"
        out: dict[str, Any] = {}
        if not th.per_knowledge_base:
            out["state"] = "off (retrieval.threshold.per_knowledge_base is false): using " + fallback
        elif cal is not None:
            out["state"] = "calibrated"
            out.update(cal.summary())
            share = self.changed_share()
            out["changed_since"] = f"{share:.0%} of its chunks" if share is not None else ""
            if self.scored_otherwise():
                out["stale"] = f"keyword scoring is now {self.keyword_scoring}: to be calibrated again"
        else:
            chunks = self._chunks()
            reason = (
                f"{chunks} chunks, fewer than calibration.min_chunks ({self.settings.min_chunks})"
                if chunks < self.settings.min_chunks else (self.last_error or "not calibrated yet")
            )
            out["state"] = f"fallback threshold {fallback}: {reason}"
        if self.settings.asked_questions_min:
            out["asked_questions_kept"] = len(self._asked)
        job = self._job
        if job is not None and job.running:
            out["running"] = f"{job.stage} {job.done}/{job.total}".strip()
        elif job is not None and job.state == "failed":
            out["last_run"] = f"failed: {job.error}"
        return out
