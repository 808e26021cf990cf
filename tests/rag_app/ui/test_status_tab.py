"""The Status tab's calibration rows, from what ``/api/status`` reports."""
from __future__ import annotations

from rag_app.config import FusionSettings
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.ui.status_tab import calibration_rows


def test_a_calibrated_knowledge_base_shows_when_on_what_and_what_to_expect() -> None:
    cal = KnowledgeBaseCalibration(
        weights={"dense_score": 23.3, "bm25_coverage": 6.55}, min_value=19.66, fusion=FusionSettings(bm25_weight=0.25),
        computed_at="2026-12-03T01:51:10+00:00", seconds=17.0, chunks=30, probes=80, probe_kind="inverse cloze",
        offtopic=1194, keep_target=0.95, probes_answered=0.95, offtopic_refused=0.83, holes_refused=0.36, auc=0.868,
    )
    rows = calibration_rows({"state": "calibrated", **cal.summary(), "changed_since": "3% of its chunks",
                             "running": "offtopic 10/1194", "stale": "keyword scoring is now <okapi>"})
    text = "\n".join(rows)
    assert "2026-12-03T01:51:10+00:00 on 30 chunks: 80 probe questions (inverse cloze)" in text
    assert "answers 95% of in-domain questions, refuses 83% of off-topic ones and 36%" in text
    assert "3% of its chunks" in text and "offtopic 10/1194" in text and "previous cutoff" in text
    assert "| Out of date | keyword scoring is now &lt;okapi&gt; |" in text


def test_the_fallback_says_why() -> None:
    rows = calibration_rows({"state": "fallback threshold dense_margin >= 0.023: 3 chunks, fewer than min_chunks",
                             "last_run": "failed: <boom>"})
    assert rows[0] == "| Calibration | fallback threshold dense_margin &gt;= 0.023: 3 chunks, fewer than min_chunks |"
    assert "&lt;boom&gt;" in rows[1]
