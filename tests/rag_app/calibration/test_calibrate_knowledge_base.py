"""Per-knowledge-base calibration on real components: the samples in Milvus Lite + BM25 with e5.

One calibration of the six sample documents (about 30 chunks) takes tens of seconds on 2 cores;
the trigger test uses fewer probes and off-topic questions to stay quick.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.settings import BM25Settings
from rag_app.calibration.offtopic import load_pool
from rag_app.config import CalibrationSettings
from rag_app.service import NotEnoughToCalibrate, RagService
from tests.support.fakes import ScriptedLLM
from tests.support.paths import SAMPLES

ANSWERABLE = [
    "入职满五年的正式员工每年有几天带薪年假？",
    "报销需要什么审批？",
    "新加坡数据中心什么时候上线？",
    "When do new hires pick up their laptop?",
    "What is the maximum upload size per file in Lumen Beacon 3.2?",
    "Is there a free trial?",
]
# Off-topic for the samples, in both languages, and not in the shipped pool (asserted below).
OFFTOPIC = [
    "How do I bake a chocolate cake?",
    "Who won the football match last night?",
    "What is the tallest mountain in Africa?",
    "How many legs does a spider have?",
    "如何更换自行车内胎？",
    "长城有多长？",
    "周末去哪里爬山比较好？",
]


def _service(kb, **calibration: object) -> RagService:
    settings = kb.settings.model_copy(update={"calibration": CalibrationSettings(**calibration)})
    return RagService.open(settings, kb=kb, llm=ScriptedLLM(["unused"]), background=bool(calibration.get("automatic")))


@pytest.fixture
def samples_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLES, folder)
    return folder


def test_calibration_on_the_samples_refuses_offtopic_and_answers_their_questions(make_kb, samples_copy) -> None:
    kb = make_kb()
    service = _service(kb)
    service.ingest_paths([samples_copy])
    assert kb.ready_retriever().kb_calibration is None
    assert kb.ready_retriever().threshold.describe().endswith("(fallback)")

    cal = service.calibrate()
    assert kb.calibrations.load() == cal  # stored with the index
    assert kb.ready_retriever().kb_calibration == cal  # and in use at once
    assert cal.probes >= 30 and cal.offtopic >= 1000 and cal.chunks == len(kb.stores()[2])
    assert cal.probes_answered >= 0.9 and cal.offtopic_refused >= 0.7 and cal.auc > 0.8
    assert cal.fusion is not None and cal.fusion_note.startswith("probe nDCG@10")

    pool = set(load_pool("zh")) | set(load_pool("en"))
    assert not pool.intersection(OFFTOPIC), "the calibration must not have seen the test's questions"
    retriever = kb.ready_retriever()
    for question in ANSWERABLE:
        result = retriever.run(question)
        assert result.has_evidence, question
        assert all(c.relevance is not None and c.relevance >= cal.min_value for c in result.chunks)
    refused = [q for q in OFFTOPIC if not retriever.run(q).has_evidence]
    assert refused == OFFTOPIC

    status = service.status()
    assert status["calibration"]["state"] == "calibrated"
    assert status["calibration"]["cutoff"] == round(cal.min_value, 4) and status["calibration"]["computed_at"]
    assert "(calibrated)" in status["retrieval"]["threshold"]
    service.close(stores=False)

    # A restart reads it back: same cutoff, no new calibration needed.
    reopened = make_kb(kb.settings.data_dir)
    assert reopened.ready_retriever().kb_calibration == cal


def test_a_knowledge_base_too_small_to_calibrate_keeps_the_fallback_and_says_so(make_kb, tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Parking\n\nVisitors park on level two. Staff park on level three.\n", encoding="utf-8")
    kb = make_kb()
    service = _service(kb)
    service.ingest_paths([note])
    with pytest.raises(NotEnoughToCalibrate, match="chunks"):
        service.calibrate()
    state = service.status()["calibration"]["state"]
    assert state.startswith("fallback threshold dense_margin >= 0.023") and "min_chunks" in state
    assert kb.ready_retriever().threshold.describe() == "dense_margin >= 0.023 (fallback)"
    assert service.calibrate_if_stale() is None  # too small is not stale: nothing to do
    service.close(stores=False)


def _long_document(path: Path, sections: int) -> None:
    animals = ["otter", "heron", "badger", "lynx", "marten", "vole", "kestrel", "newt", "stoat", "wren", "beaver",
               "osprey"]
    parts = ["# Field survey of the northern wetlands\n"]
    for i in range(sections):
        a = animals[i % len(animals)]
        parts.append(
            f"## Site {i + 1}: the {a} colony\n\n"
            + " ".join(
                f"Observation {j + 1} at site {i + 1} counted {3 + (i * 7 + j) % 11} {a}s near the reed beds"
                f" during the {['morning', 'evening', 'night'][j % 3]} watch, with water at {10 + j} cm."
                for j in range(14)
            )
            + "\n"
        )
    path.write_text("\n".join(parts), encoding="utf-8")


def test_a_large_sync_recalibrates_in_the_background_and_a_one_file_change_does_not(
    make_kb, samples_copy: Path
) -> None:
    kb = make_kb()
    service = _service(kb, automatic=True, probes=40, min_probes=10, offtopic_per_language=40,
                       recalibrate_share=0.25)
    assert service.calibration.job is None  # empty: nothing to calibrate
    service.sync_folder(samples_copy)
    first = service.calibration.job
    assert first is not None and first.wait(300) and first.state == "done", first.error if first else ""
    cal = kb.ready_retriever().kb_calibration
    assert cal is not None and cal.chunks == len(kb.stores()[2])

    (samples_copy / "parking.md").write_text("# Parking\n\nVisitors park on level two.\n", encoding="utf-8")
    report = service.sync_folder(samples_copy)
    assert report.chunks_added == 1
    assert service.calibration.job is first  # 1 chunk of ~30: not material, no new run
    assert kb.ready_retriever().kb_calibration is cal

    _long_document(samples_copy / "survey.md", sections=12)
    report = service.sync_folder(samples_copy)
    assert report.chunks_added >= 0.25 * cal.chunks
    second = service.calibration.job
    assert second is not None and second is not first
    assert second.wait(300) and second.state == "done", second.error
    new = kb.ready_retriever().kb_calibration
    assert new is not None and new is not cal and new.chunks == len(kb.stores()[2])
    assert kb.calibrations.load() == new
    service.close(stores=False)


def test_enough_asked_questions_recalibrate_with_their_style_and_are_kept_as_numbers(
    make_kb, samples_copy: Path
) -> None:
    kb = make_kb()
    service = _service(kb, automatic=True, probes=40, min_probes=10, offtopic_per_language=40,
                       asked_questions_min=8)
    service.sync_folder(samples_copy)
    first = service.calibration.job
    assert first is not None and first.wait(300) and first.state == "done", first.error if first else ""
    cal = kb.ready_retriever().kb_calibration
    assert cal is not None and cal.asked_questions == 0 and cal.probe_kind.startswith("inverse cloze:")

    service.ask("How do I bake a chocolate cake?")  # refused: an off-topic question's style is not kept
    assert service.calibration.asked_styles == []
    for question in ANSWERABLE * 3:
        service.ask(question)
        if len(service.calibration.asked_styles) >= 8:
            break
    styles = service.calibration.asked_styles
    assert len(styles) == 8 and all(0 <= s <= 1 for s in styles)
    second = service.calibration.job
    assert second is not None and second is not first
    assert second.wait(300) and second.state == "done", second.error
    new = kb.ready_retriever().kb_calibration
    assert new is not None and new.asked_questions == 8
    assert new.probe_weights == cal.weights and new.probe_min_value == cal.min_value  # the same probes, seeded
    assert new.probe_kind == "inverse cloze and sentence windows, weighted to the style of 8 questions asked"
    assert service.status()["calibration"]["asked_questions"] == 8
    assert service.status()["calibration"]["asked_questions_kept"] == 8
    service.ask(ANSWERABLE[0])  # 9 of the 16 that would start the next one
    assert service.calibration.job is second
    service.close(stores=False)  # writes the styles not stored yet
    assert len(kb.calibrations.load_asked_styles()) == 9  # numbers only, beside the calibration


def test_llm_written_probes_are_wired_through_the_service(make_kb, samples_copy: Path) -> None:
    """The LLM here is scripted (it asks about the passage's first words): this proves the wiring,
    not the questions' quality (BENCHMARKS.md measures the packaged model's)."""

    def ask_about_the_passage(messages: list[dict[str, str]]) -> list[str]:
        passage = messages[-1]["content"].split("<<<", 1)[1].split(">>>", 1)[0].strip()
        if any("\u4e00" <= ch <= "\u9fff" for ch in passage):
            return [f"{passage.replace(' ', '')[:12]}是什么意思？"]
        return [f"What does it say about {' '.join(passage.split()[:6])}?"]

    kb = make_kb()
    settings = kb.settings.model_copy(update={"calibration": CalibrationSettings(
        probe_writer="llm", llm_probes=12, min_probes=10, offtopic_per_language=40)})
    llm = ScriptedLLM(responder=ask_about_the_passage)
    service = RagService.open(settings, kb=kb, llm=llm, background=False)
    service.ingest_paths([samples_copy])
    cal = service.calibrate()
    assert cal.probe_kind == "questions written by the LLM" and cal.probes == len(llm.calls) == 12
    assert cal.probes_answered >= 0.9 and kb.ready_retriever().kb_calibration == cal
    service.close(stores=False)


def test_a_calibration_measured_under_other_keyword_scoring_is_out_of_date(
    make_kb, samples_copy: Path, tmp_path: Path
) -> None:
    """The relevance score mixes in the BM25 coverage: after ``bm25.idf`` changes, the stored
    calibration keeps answering questions until a new one, made under the new scoring, replaces it."""
    data = tmp_path / "kb-data"
    small = {"probes": 40, "min_probes": 10, "offtopic_per_language": 40}
    kb = make_kb(data)
    service = _service(kb, **small)
    service.sync_folder(samples_copy)
    first = service.calibrate()
    assert first.keyword_scoring == "in-process, lucene idf, k1 1.5, b 0.75"  # the default
    assert service.calibrate_if_stale() is None and "stale" not in service.status()["calibration"]
    service.close(stores=False)
    kb.close()

    okapi = make_kb(data, bm25=BM25Settings(idf="okapi"))
    reopened = _service(okapi, **small)
    assert okapi.ready_retriever().kb_calibration == first  # still in use meanwhile
    assert reopened.status()["calibration"]["stale"] == (
        "keyword scoring is now in-process, okapi idf, k1 1.5, b 0.75, epsilon 0.25: to be calibrated again")
    second = reopened.calibrate_if_stale()
    assert second is not None and second.keyword_scoring.startswith("in-process, okapi idf")
    assert okapi.ready_retriever().kb_calibration == second and reopened.calibrate_if_stale() is None
    reopened.close(stores=False)
