"""What calibration learned about one knowledge base, as retrieval applies it.

``rag_app.calibration`` measures, on the knowledge base's own probe questions and a pool of generic
off-topic ones, which combination of a candidate's scores separates them best, the cutoff on it
that still answers the chosen share of probes, and the fusion that ranks the probes' evidence
best. :class:`KnowledgeBaseCalibration` is that result: stored as JSON beside the index, read by
the retriever (the threshold and fusion stages), shown in the Status tab.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from ingest.files import atomic_write_text
from ingest.settings import BM25Settings
from rag_app.config import FusionSettings

log = logging.getLogger(__name__)

# Candidate scores a relevance score may combine (attribute names of RetrievedChunk / Candidate).
RELEVANCE_FEATURES = ("dense_score", "dense_margin", "dense_z", "bm25_coverage")


class HasScores(Protocol):
    @property
    def dense_score(self) -> float: ...
    @property
    def dense_margin(self) -> float: ...
    @property
    def dense_z(self) -> float: ...
    @property
    def bm25_coverage(self) -> float: ...


def relevance_of(weights: dict[str, float], candidate: HasScores) -> float:
    """The weighted sum of the candidate's scores; NaN when a weighted score is missing."""
    total = 0.0
    for name, w in weights.items():
        if w == 0:
            continue
        v = getattr(candidate, name)
        if v is None or math.isnan(v):
            return math.nan
        total += w * float(v)
    return total


def weights_label(weights: dict[str, float]) -> str:
    used = [(name, w) for name, w in weights.items() if w != 0]
    return " + ".join(f"{w:.3g}*{name}" for name, w in used) if used else "none"


def keyword_scoring(bm25: BM25Settings) -> str:
    """What the keyword leg's scores are (backend, idf, parameters). The relevance score mixes in the
    BM25 coverage, so a calibration measured under other keyword scoring is stale."""
    if bm25.backend == "none":
        return "none"
    if bm25.backend == "milvus":
        return f"milvus full-text, lucene idf, k1 {bm25.k1:g}, b {bm25.b:g}"
    floor = f", epsilon {bm25.epsilon:g}" if bm25.idf == "okapi" else ""
    return f"in-process, {bm25.idf} idf, k1 {bm25.k1:g}, b {bm25.b:g}{floor}"


class KnowledgeBaseCalibration(BaseModel):
    """One knowledge base's relevance score, its cutoff and its fusion, with how they were found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    weights: dict[str, float]  # relevance = sum(weight * score) over RELEVANCE_FEATURES
    min_value: float  # a chunk is relevant enough to answer from when relevance >= min_value
    fusion: FusionSettings | None = None  # None: keep the configured fusion
    computed_at: str  # ISO 8601, local time with offset
    seconds: float  # how long the calibration took
    chunks: int  # chunks in the knowledge base when it ran
    probes: int  # in-domain probe questions used
    probe_kind: str  # how they were made
    offtopic: int  # generic off-topic questions scored
    keep_target: float  # the share of probes the cutoff was chosen to answer
    probes_answered: float  # measured at the cutoff
    offtopic_refused: float  # measured at the cutoff
    holes_refused: float  # probes whose whole document was removed, refused at the cutoff
    auc: float  # P(a probe's best relevance > an off-topic question's best)
    fusion_note: str = ""  # how the fusion was chosen (probe nDCG@10 per candidate setting)
    keyword_scoring: str = ""  # keyword_scoring() of the settings it ran under ("": before it was recorded)
    asked_questions: int = 0  # asked questions whose style weighted the probes (0: none, sentence probes)
    # The score and cutoff the sentence probes alone chose (None: the same as above). They, not a
    # cutoff weighted to asked questions, decide which asked questions are on topic enough to weight
    # the next calibration: a weighted cutoff choosing its own askers would feed on itself.
    probe_weights: dict[str, float] | None = None
    probe_min_value: float | None = None

    @property
    def score_label(self) -> str:
        return weights_label(self.weights)

    def relevance(self, candidate: HasScores) -> float:
        return relevance_of(self.weights, candidate)

    def on_topic(self, candidates: Iterable[HasScores]) -> bool:
        """A candidate reaches the sentence probes' own cutoff (``probe_weights``)."""
        weights = self.probe_weights if self.probe_weights is not None else self.weights
        cutoff = self.probe_min_value if self.probe_min_value is not None else self.min_value
        return any(relevance_of(weights, c) >= cutoff for c in candidates)

    def fusion_for(self, configured: FusionSettings) -> FusionSettings:
        """The fusion retrieval uses: this calibration's, unless the configured fusion opts out
        (``per_knowledge_base: false``) or none was chosen."""
        return self.fusion if self.fusion is not None and configured.per_knowledge_base else configured

    def summary(self) -> dict[str, object]:
        """The figures the Status tab and ``/api/status`` show."""
        fusion = self.fusion
        return {
            "score": self.score_label,
            "cutoff": round(self.min_value, 4),
            "computed_at": self.computed_at,
            "chunks": self.chunks,
            "probes": self.probes,
            "probe_kind": self.probe_kind,
            "asked_questions": self.asked_questions,
            "offtopic_questions": self.offtopic,
            "expected_answered": round(self.probes_answered, 3),
            "expected_offtopic_refused": round(self.offtopic_refused, 3),
            "expected_holes_refused": round(self.holes_refused, 3),
            "auc": round(self.auc, 3),
            "fusion": (
                f"{fusion.method}, dense {fusion.dense_weight:g} / bm25 {fusion.bm25_weight:g}"
                if fusion else "configured"
            ),
            "seconds": round(self.seconds, 1),
            "keyword_scoring": self.keyword_scoring or "not recorded",
        }

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: Path) -> KnowledgeBaseCalibration | None:
        """The stored calibration, or None when there is none or it cannot be read (logged: the
        retriever then uses the fallback threshold rather than failing every question)."""
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, ValidationError) as exc:
            log.warning("ignoring unreadable calibration %s: %s", path, exc)
            return None
