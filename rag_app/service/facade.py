"""The application service: the one object every front end (web API, Gradio UI, CLIs) calls.

Front ends never reach into the knowledge base, the retriever or the answerer; they ask the
service, which owns the knowledge base wiring, the upload store, the background jobs, the folder
sync schedule and the tuned-model store.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.beir import corpus_size, iter_corpus
from ingest.indexer import ConsistencyReport, ProgressCallback
from ingest.types import Chunk, IngestReport
from rag_app.answering import Answerer, AnswerEvent, ErrorEvent, FinalEvent
from rag_app.answering.question import BoundedQuestion, History
from rag_app.calibration.collect import Progress
from rag_app.calibration.probes import QuestionWriter
from rag_app.config import SchedulerSettings, Settings, TuningSettings
from rag_app.evaluation.answer_eval import AnswerCase, AnswerOutcome, run_cases
from rag_app.evaluation.beir_eval import CandidateSet, collect_candidates, collect_for_queries
from rag_app.llm import LLMBackend, make_llm
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.retrieval.results import RetrievalResult
from rag_app.tuning.pipeline import Activation, TuneProgress, TuneReport, run_tuning
from rag_app.tuning.questions import ChunkSample, LLMQuestionWriter

from .calibration import CalibrationKeeper
from .ingestion import IngestionJobs, precheck
from .job_journal import JobJournal
from .jobs import Job, JobWorker, start_in_thread
from .knowledge_base import KnowledgeBase
from .migration import MigrationProgress, MigrationReport, migrate
from .model_store import TunedModelStore, apply_active
from .scheduler import SyncScheduler
from .status import build_status
from .uploads import UploadInput, UploadStore, display_name

log = logging.getLogger(__name__)


class EmptyQuestionError(ValueError):
    """Nothing is left of a question once control and invisible characters are removed."""


@dataclass(frozen=True)
class SearchResult:
    """What a search returns to a front end: the retrieval result and whether the query was cut."""

    result: RetrievalResult
    truncated: bool


class RagService:
    """Questions, documents, sync, tuning, evaluation and status over one knowledge base.

    ``background=False`` (the CLIs) starts no folder-sync schedule; the job worker starts on the
    first queued job either way."""

    def __init__(self, settings: Settings, kb: KnowledgeBase, answerer: Answerer, *, background: bool = True) -> None:
        self.settings = settings
        self.kb = kb
        self.answerer = answerer
        self.uploads = UploadStore(settings.uploads_dir)
        self.journal = JobJournal(kb.stores()[0].db, kb=settings.knowledge_base)  # every replica's jobs
        self.worker = JobWorker(recorder=self.journal)
        self._tuning: Job | None = None
        self._tuning_lock = threading.Lock()
        # The folder sync runs in this process (Milvus Lite admits one process per file).
        self.calibration = CalibrationKeeper(kb, settings, background=background,
                                             question_writer=self.llm_question_writer, recorder=self.journal)
        self.answerer.on_retrieved = self.calibration.question_retrieved
        self._background = background
        self.scheduler = self._scheduled(settings.scheduler)
        self.calibration.start_if_stale()

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        llm: LLMBackend | Callable[[], LLMBackend] | None = None,
        kb: KnowledgeBase | None = None,
        background: bool = True,
    ) -> RagService:
        """A service over a warmed knowledge base. Without ``llm`` (or with a factory) the backend is
        built on the first question that needs it, so the service starts without loading a model."""
        kb = (kb or KnowledgeBase(settings)).warm_up()
        backend: LLMBackend | Callable[[], LLMBackend] = llm if llm is not None else (
            lambda: make_llm(settings.llm, settings.data_dir)
        )
        return cls(settings, kb, Answerer(kb, backend, settings.answer), background=background)

    @staticmethod
    def effective_settings(settings: Settings) -> Settings:
        """``settings`` with the tuned reranker that rag-tune switched on, as a knowledge base uses them."""
        return apply_active(settings)

    def close(self, *, stores: bool = True) -> None:
        """Stop the schedule and the worker (a running job finishes first), then close the stores.
        ``stores=False`` leaves a knowledge base that others share open (tests)."""
        self.scheduler.shutdown()
        self.worker.stop()
        job = self.calibration.job
        if job is not None and job.running:
            job.wait(120)  # it reads the stores about to close
        self.calibration.flush()
        self.journal.close()
        if stores:
            self.kb.close()

    # --- questions --------------------------------------------------------------------------------
    def prepare_question(self, question: str | None) -> BoundedQuestion:
        """The question cleaned and cut to ``answer.max_question_tokens``; raises when it is empty."""
        prepared = self.answerer.prepare_question(question)
        if prepared is None:
            raise EmptyQuestionError(
                "Please enter a question: it is empty (or only whitespace and control characters)."
            )
        return prepared

    def ask_stream(self, question: str | BoundedQuestion, history: History | None = None) -> Iterator[AnswerEvent]:
        """The answer as events: query, sources, text deltas, then one final or error event."""
        self.calibration.follow()
        return self.answerer.stream(question, history)

    def ask(self, question: str | BoundedQuestion, history: History | None = None) -> FinalEvent | ErrorEvent:
        self.calibration.follow()
        return self.answerer.answer(question, history)

    def search(self, query: str, top_k: int | None = None) -> SearchResult:
        """Retrieval without the LLM; raises :class:`EmptyQuestionError` for an empty query."""
        prepared = self.prepare_question(query)
        self.calibration.follow()
        result = self.kb.ready_retriever().run(prepared.text, top_k=top_k)
        return SearchResult(result, prepared.truncated)

    # --- documents ----------------------------------------------------------------------------------
    def _ingestion(self) -> IngestionJobs:
        registry, _, _ = self.kb.stores()
        return IngestionJobs(self.kb.ready_indexer(), registry, self.uploads, self.settings.ui.max_upload_mb,
                             self._corpus_changed)

    def documents(self) -> list[dict[str, Any]]:
        registry, _, _ = self.kb.stores()
        return [
            {
                "source": d.source,
                "file": display_name(d.source),
                "type": d.file_type,
                "title": d.title,
                "chunks": d.chunk_count,
                "indexed_at": d.indexed_at,
                "uploaded": self.uploads.contains(d.source),
            }
            for d in registry.documents()
        ]

    def upload(self, files: Sequence[UploadInput]) -> Job:
        """Queue files for indexing; the job's per-file results fill in as the worker goes."""
        job = Job("upload")
        accepted = precheck(job, files, self.settings)
        return self.worker.submit(job, self._ingestion().uploads_body(accepted))

    def reindex(self) -> Job:
        """Queue a re-ingestion of every indexed file source that still exists on disk."""
        return self.worker.submit(Job("reindex"), self._ingestion().run_reindex)

    def delete(self, source: str, timeout: float | None = 300.0) -> int | None:
        """Remove a document from the registry, Milvus and BM25 (and its stored upload), queued
        behind other writes. Returns the chunks removed, or None when the source is not indexed."""
        job = self.worker.submit(Job("delete"), self._ingestion().delete_body(source))
        if not job.wait(timeout):
            raise TimeoutError(f"deleting {source} is still queued behind other ingestion jobs")
        if job.state == "failed":
            raise RuntimeError(job.error)
        return job.value  # type: ignore[no-any-return]

    # --- synchronous indexing (the CLIs) -------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[str | Path], progress: ProgressCallback | None = None) -> IngestReport:
        report = self.kb.ready_indexer().ingest_paths(paths, progress)
        self._corpus_changed(report.chunks_added + report.chunks_removed)
        return report

    def ingest_corpus(self, folder: str | Path, progress: ProgressCallback | None = None) -> IngestReport:
        """Index a BEIR-format corpus folder (corpus.jsonl), one document per line."""
        report = self.kb.ready_indexer().ingest_documents(iter_corpus(folder), progress, total=corpus_size(folder))
        self._corpus_changed(report.chunks_added + report.chunks_removed)
        return report

    def delete_sources(self, sources: Iterable[str]) -> int:
        removed = self.kb.ready_indexer().delete_sources(sources)
        self._corpus_changed(removed)
        return removed

    def sync_folder(self, folder: str | Path, progress: ProgressCallback | None = None) -> IngestReport:
        report = self.kb.ready_indexer().sync_folder(folder, progress)
        self._corpus_changed(report.chunks_added + report.chunks_removed)
        return report

    def migrate_from(self, source: Settings, progress: MigrationProgress | None = None) -> MigrationReport:
        """Copy the knowledge base ``source`` describes into this one's stores (``rag_app.service.migration``)."""
        report = migrate(source, self.kb, progress)
        self._corpus_changed(report.chunks_copied)
        return report

    def check(self, repair: bool = True) -> ConsistencyReport:
        """Whether the registry, Milvus and BM25 agree; with ``repair``, fix the drift."""
        return self.kb.ready_indexer().check(repair=repair)

    def _corpus_changed(self, chunks: int) -> None:
        """After ``chunks`` chunks were added or removed: the dense scores' corpus sample is redrawn,
        and the knowledge base re-calibrated in the background if that changed it materially."""
        self.kb.ready_retriever().invalidate_calibration()
        if chunks:
            self.calibration.corpus_changed(chunks)

    # --- calibration --------------------------------------------------------------------------------
    def llm_question_writer(self) -> QuestionWriter:
        """The configured LLM writing one question a chunk answers (``calibration.probe_writer: llm``)."""
        writer = LLMQuestionWriter(self.answerer.get_llm())

        def write(chunk: Chunk) -> str | None:
            written = writer.write(ChunkSample(chunk.chunk_id, chunk.doc_id, chunk.text))
            return written[0].query if written else None

        return write

    def calibrate(self, progress: Progress | None = None) -> KnowledgeBaseCalibration:
        """Calibrate the refusal cutoff and fusion now (blocking); raises NotEnoughToCalibrate."""
        return self.calibration.run(progress)

    def calibrate_if_stale(self, progress: Progress | None = None) -> KnowledgeBaseCalibration | None:
        """Calibrate now when there is no calibration or the corpus changed materially since."""
        return self.calibration.run(progress) if self.calibration.is_stale() else None

    # --- scheduled folder sync ----------------------------------------------------------------------
    @property
    def sync_folder_configured(self) -> str:
        """The folder the schedule mirrors ("" when none is configured)."""
        return self.scheduler.folder

    def _scheduled(self, schedule: SchedulerSettings) -> SyncScheduler:
        """A folder-sync schedule over this knowledge base, started when running in the background."""
        scheduler = SyncScheduler(self.kb, schedule, on_change=self._corpus_changed)
        if self._background and scheduler.folder:
            scheduler.start()
        return scheduler

    def reschedule(self, schedule: SchedulerSettings) -> None:
        """Replace the folder-sync schedule (changed in the app); a sync running now finishes first."""
        self.scheduler.shutdown()
        self.settings = self.settings.model_copy(update={"scheduler": schedule})
        self.scheduler = self._scheduled(schedule)

    def sync(self, wait: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """Run the configured folder sync now (queued behind a running one)."""
        if not self.scheduler.folder:
            raise RuntimeError("no sync folder configured (scheduler.folder)")
        return self.scheduler.run_now(wait=wait, timeout=timeout).as_dict()

    # --- reranker tuning ----------------------------------------------------------------------------
    @property
    def tuned_models(self) -> TunedModelStore:
        return TunedModelStore(self.settings.kb_dir)

    @property
    def tuning(self) -> Job | None:
        """The latest tuning job of this process, running or finished."""
        return self._tuning

    def tune(self, generator: str) -> Job:
        """Start a tuning run in the background (one at a time); it takes up to tuning.max_minutes."""
        with self._tuning_lock:
            if self._tuning is not None and self._tuning.running:
                raise RuntimeError("a tuning run is already going; wait for it to finish")
            job = self._tuning = Job("tuning", stage="starting", detail=generator)
        settings = self.settings.tuning.model_copy(update={"generator": generator})

        def body(job: Job) -> None:
            report = self.run_tuning(settings, progress=job.progress)
            job.value, job.report = report, report.lines()

        return start_in_thread(job, body, "reranker-tuning", self.journal)

    def run_tuning(
        self,
        settings: TuningSettings | None = None,
        *,
        data: Path | None = None,
        activation: Activation = "if-better",
        progress: TuneProgress | None = None,
    ) -> TuneReport:
        """Tune a reranker now (blocking); a version that is switched on serves the next question."""
        report = run_tuning(self.kb, settings or self.settings.tuning, store=self.tuned_models,
                            llm=self.answerer.get_llm, data=data, activation=activation, progress=progress)
        if report.activated:
            self.kb.reload_reranker()
        return report

    def rollback_tuning(self) -> str:
        """Switch back to the tuned reranker that was on before (or none); returns its version."""
        previous = self.tuned_models.rollback()
        self.kb.reload_reranker()
        return previous.version if previous else "none"

    # --- evaluation ---------------------------------------------------------------------------------
    def evaluate(
        self,
        dataset_dir: str | Path,
        *,
        max_queries: int | None = None,
        depth: int,
        split: str = "dev",
        progress: Callable[[int, int], None] | None = None,
        by_chunk: bool = False,
    ) -> CandidateSet:
        """Every judged query of a BEIR folder through the retriever (threshold off), all candidates
        kept. ``by_chunk``: its qrels name this knowledge base's chunks (``rag-eval --kb``)."""
        return collect_candidates(self.kb, dataset_dir, max_queries=max_queries, depth=depth, split=split,
                                  progress=progress, by_chunk=by_chunk)

    def evaluate_queries(self, queries: Mapping[str, str], depth: int) -> CandidateSet:
        """Candidates for unjudged questions (e.g. out-of-domain ones, to measure refusal)."""
        return collect_for_queries(self.kb, queries, depth)

    def evaluate_answers(
        self, cases: Sequence[AnswerCase], progress: Callable[[AnswerOutcome], None] | None = None
    ) -> list[AnswerOutcome]:
        """Questions through the whole answerer with this service's LLM. The answer check records its
        verdict but refuses nothing (cutoff 0), and an unsupported, off-question or unsure answer is
        kept with its citations (and its figure confidence), so the figures with and without each rule
        come from one run."""
        settings = self.answerer.settings
        observing = settings.model_copy(update={
            "check": settings.check.model_copy(update={"min_yes_zh": 0.0, "min_yes_en": 0.0}),
            "refuse_unsupported": False,
            "refuse_off_question": False,
            "min_figure_confidence_zh": 0.0,
            "min_figure_confidence_en": 0.0,
        })
        answerer = Answerer(self.kb, self.answerer.get_llm(), observing, top_k=self.answerer.top_k)
        return run_cases(answerer, cases, progress)

    # --- status -------------------------------------------------------------------------------------
    def recent_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest background jobs of every replica (a dead replica's unfinished ones: interrupted)."""
        return self.journal.recent(limit)

    def status(self) -> dict[str, Any]:
        """What runs where, and whether the three stores agree. Never secrets."""
        try:
            jobs = self.journal.recent(10)
        except Exception as exc:  # the state database is away: the rest of the status still shows
            jobs = [{"kind": "status", "state": "unavailable", "error": str(exc)}]
        return build_status(self.settings, self.kb, llm_loaded=self.answerer.llm_built,
                            queued_jobs=self.worker.pending, sync=self.scheduler.status().as_dict(),
                            calibration=self.calibration.status(), jobs=jobs)
