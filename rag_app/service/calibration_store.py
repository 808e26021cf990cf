"""Where a knowledge base's calibration is kept: in the state database, with the registry, so every
replica uses the one calibration whichever replica computed it. A ``calibration.json`` left in the
data directory by an earlier version is read once and moved in."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import ValidationError

from ingest.state import StateDatabase
from ingest.state.values import get_value, put_value, updated_at
from rag_app.config import Settings
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration

log = logging.getLogger(__name__)

CALIBRATION_KEY = "calibration"
ASKED_STYLES_SUFFIX = ":asked-styles"  # the styles of questions asked (numbers only), beside it
FOLLOW_INTERVAL_S = 10.0  # how often a replica looks for a calibration another one stored


class CalibrationStore:
    def __init__(self, db: StateDatabase, legacy_path: Path | None = None, key: str = CALIBRATION_KEY) -> None:
        """``key``: the knowledge base's own (``Registry.scoped_name(CALIBRATION_KEY)``)."""
        self.db = db
        self.key = key
        self.legacy_path = legacy_path
        self.loaded_at: float | None = None  # ``updated_at`` of the calibration last loaded or saved
        self._next_look = 0.0

    def load(self) -> KnowledgeBaseCalibration | None:
        """The stored calibration, or None when there is none or it cannot be read (logged: the
        retriever then uses the fallback threshold rather than failing every question)."""
        stored = get_value(self.db, self.key)
        if stored is None:
            return self._adopt_legacy()
        text, stamp = stored
        self.loaded_at = stamp
        try:
            return KnowledgeBaseCalibration.model_validate_json(text)
        except (ValueError, ValidationError) as exc:
            log.warning("ignoring an unreadable stored calibration: %s", exc)
            return None

    def save(self, calibration: KnowledgeBaseCalibration) -> None:
        self.loaded_at = put_value(self.db, self.key, calibration.model_dump_json())

    def load_asked_styles(self) -> list[float]:
        """The styles of the questions asked so far (``best_keyword_coverage``), oldest first; [] when none
        were kept or they cannot be read (logged)."""
        stored = get_value(self.db, self.key + ASKED_STYLES_SUFFIX)
        if stored is None:
            return []
        try:
            values = json.loads(stored[0])
            return [float(v) for v in values]
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable asked-question styles: %s", exc)
            return []

    def save_asked_styles(self, styles: list[float]) -> None:
        put_value(self.db, self.key + ASKED_STYLES_SUFFIX, json.dumps([round(v, 5) for v in styles]))

    def newer(self) -> KnowledgeBaseCalibration | None:
        """A calibration stored (by another replica) since this one's was loaded; looks at most every
        ``FOLLOW_INTERVAL_S`` and costs one indexed read when it does."""
        now = time.monotonic()
        if now < self._next_look:
            return None
        self._next_look = now + FOLLOW_INTERVAL_S
        stamp = updated_at(self.db, self.key)
        if stamp is None or stamp == self.loaded_at:
            return None
        return self.load()

    def _adopt_legacy(self) -> KnowledgeBaseCalibration | None:
        if self.legacy_path is None or not self.legacy_path.is_file():
            return None
        calibration = KnowledgeBaseCalibration.load(self.legacy_path)
        if calibration is not None:
            self.save(calibration)
            log.info("moved the calibration from %s into the state database", self.legacy_path)
        return calibration


def stored_calibration(settings: Settings) -> KnowledgeBaseCalibration | None:
    """The calibration of the knowledge base ``settings`` describe, without opening its stores."""
    db = StateDatabase(settings.database_url)
    try:
        return CalibrationStore(db, settings.calibration_path).load()
    finally:
        db.close()
