"""The calibration lives in the state database: one replica stores it, the others start using it;
a calibration.json from an earlier version is moved in once."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.state import StateDatabase
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.service import calibration_store
from rag_app.service.calibration_store import CalibrationStore


def _calibration(min_value: float) -> KnowledgeBaseCalibration:
    return KnowledgeBaseCalibration(
        weights={"dense_score": 1.0}, min_value=min_value, fusion=None, computed_at="2026-12-03T00:00:00+00:00",
        seconds=1.0, chunks=10, probes=30, probe_kind="test", offtopic=20, keep_target=0.95,
        probes_answered=0.95, offtopic_refused=0.9, holes_refused=0.5, auc=0.9,
    )


def test_a_calibration_stored_by_one_replica_reaches_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration_store, "FOLLOW_INTERVAL_S", 0.0)
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    first, second = CalibrationStore(StateDatabase(url)), CalibrationStore(StateDatabase(url))
    assert first.load() is None and second.newer() is None
    first.save(_calibration(0.3))
    assert second.newer() == _calibration(0.3)
    assert second.newer() is None  # nothing newer since
    first.save(_calibration(0.4))
    assert second.newer() == _calibration(0.4) and second.load() == _calibration(0.4)


def test_an_earlier_calibration_file_is_moved_in_once(tmp_path: Path) -> None:
    legacy = tmp_path / "calibration.json"
    _calibration(0.25).save(legacy)
    db = StateDatabase(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    assert CalibrationStore(db, legacy).load() == _calibration(0.25)
    legacy.write_text("{broken", encoding="utf-8")  # the database copy is what counts now
    assert CalibrationStore(db, legacy).load() == _calibration(0.25)


def test_an_unreadable_stored_calibration_is_ignored(tmp_path: Path) -> None:
    from ingest.state.values import put_value

    db = StateDatabase(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    put_value(db, calibration_store.CALIBRATION_KEY, '{"min_value": "not a number"')
    assert CalibrationStore(db).load() is None


def test_the_asked_questions_styles_are_kept_as_numbers_beside_the_calibration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    store = CalibrationStore(StateDatabase(url))
    assert store.load_asked_styles() == []
    store.save_asked_styles([0.25, 0.5123456])
    assert CalibrationStore(StateDatabase(url)).load_asked_styles() == [0.25, 0.51235]
    assert store.load() is None  # the calibration itself is another value
