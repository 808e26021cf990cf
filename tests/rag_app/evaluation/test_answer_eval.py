"""Answer-level evaluation: scoring rules, samples that never overlap, the check applied after the
run, leaving a question's evidence out of retrieval, and ``rag-eval --answers`` end to end with the
packaged LLM."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from ingest.text_tokenizer import BM25Tokenizer
from rag_app.answering import Answerer
from rag_app.cli import evaluate as eval_cli
from rag_app.config import AnswerSettings
from rag_app.evaluation.answer_eval import (
    AnswerCase,
    AnswerOutcome,
    answer_cases,
    answer_f1,
    contains_gold,
    document_key,
    look_alike_rule,
    normalise_answer,
    place_check_cutoff,
    recite,
    run_case,
    summarise,
    with_rules,
)
from tests.support.fakes import ScriptedLLM
from tests.support.paths import REPO, SAMPLES


def test_normalisation_and_overlap_scores() -> None:
    assert normalise_answer("  The 25 MB, per file! ", "en") == "25 mb per file"
    assert normalise_answer("每年 18 天。", "zh") == "每年18天"
    assert contains_gold("Each file may be up to 25 MB [1].", ["25 MB"], "en")
    assert contains_gold("每年享有 18 天带薪年假 [1]。", ["18天"], "zh")
    assert not contains_gold("Up to 2.5 MB.", ["25 MB"], "en") and not contains_gold("x", [""], "en")
    assert answer_f1("每年18天", "18天", "zh") == pytest.approx(2 * (3 / 5) * 1 / (3 / 5 + 1))
    assert answer_f1("the size is 25 MB", "25 MB", "en") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert answer_f1("", "25 MB", "en") == 0.0
    assert document_key("beir:cmrc:TRIAL_1") == "TRIAL_1" and document_key("/docs/a/faq.md") == "faq.md"


def _beir(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n" for i in range(n)), encoding="utf-8")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"question {i}?"}) + "\n" for i in range(n)), encoding="utf-8")
    (folder / "answers.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "answers": [f"a{i}"]}) + "\n" for i in range(n)), encoding="utf-8")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n)), encoding="utf-8")
    return folder


def test_development_and_test_samples_never_share_a_question(tmp_path: Path) -> None:
    folder, other = _beir(tmp_path / "set", 40), _beir(tmp_path / "other", 30)
    dev = answer_cases(folder, answerable=8, holes=6, offtopic_folder=other, offtopic=5, offset=0)
    test = answer_cases(folder, answerable=10, holes=6, offtopic_folder=other, offtopic=5, offset=8)
    assert [c.kind for c in dev].count("hole") == 6 and [c.kind for c in dev].count("offtopic") == 5
    assert not {c.qid for c in dev} & {c.qid for c in test}
    for case in dev + test:
        if case.kind == "hole":
            assert case.leave_out == {"d" + case.qid[1:]} and case.answers
        assert (case.kind == "answerable") == (case.answers != () and not case.leave_out)
    assert answer_cases(folder, answerable=8, holes=6, offset=0) == [c for c in dev if c.kind != "offtopic"]
    with pytest.raises(ValueError, match="too few"):
        answer_cases(folder, answerable=30, holes=10, offset=5)


def _outcome(kind: str, check: float | None, contained: bool = False, refusal: str = "", language: str = "zh"):
    return AnswerOutcome("q", kind, "问题？", language, "答", refusal, check, contained, 1.0 if contained else 0.0,  # type: ignore[arg-type]
                         1, int(contained), 2.0, 5.0, 0.1)


def test_the_check_applied_after_the_run_and_its_cutoff() -> None:
    outcomes = [
        _outcome("answerable", 0.9, True), _outcome("answerable", 0.5, True), _outcome("answerable", 0.2, False),
        _outcome("answerable", 0.1, True), _outcome("hole", 0.3), _outcome("hole", 0.05),
        _outcome("offtopic", None, refusal="no_evidence"), _outcome("offtopic", 0.15),
    ]
    off = summarise(outcomes)
    assert off["answerable"]["accuracy"] == 0.75 and off["hole"]["refused"] == 0.0
    assert off["unanswerable_refused"] == 0.25
    assert off["check_auc"] == 9 / 12  # verdicts of questions that reached the check; 0.2 > 0.05, 0.15 but < 0.3
    on = summarise(outcomes, {"zh": 0.25})
    assert on["answerable"]["accuracy"] == 0.5 and on["answerable"]["refused_check"] == 0.5
    assert on["hole"]["refused_check"] == 0.5 and on["offtopic"]["refused"] == 1.0
    assert with_rules(outcomes[0], {"zh": 0.95}).refusal == "not_in_sources"
    assert with_rules(outcomes[6], {"zh": 0.95}) == outcomes[6]  # other refusals stay as they are
    assert with_rules(replace(outcomes[0], language="en"), {"zh": 0.95}).refusal == ""
    # An answer with no citation is withheld only with the support rule, after the check has had its say.
    uncited = replace(outcomes[0], cited=0, cited_with_gold=0)
    assert with_rules(uncited, {}).refusal == "" and with_rules(uncited, {}, unsupported=True).refusal == "unsupported"
    assert with_rules(replace(uncited, answer_check=0.1), {"zh": 0.5}, unsupported=True).refusal == "not_in_sources"
    withheld = summarise([*outcomes, uncited], {"zh": 0.25}, unsupported=True)
    assert withheld["answerable"]["refused_unsupported"] == 1 / 5 and withheld["answerable"]["accuracy"] == 2 / 5
    # A cited answer with no value of the kind its question asks for: withheld by the kind rule only.
    off = replace(outcomes[1], question="报销要在多久之内提交？", answer="请在系统中提交报销单 [1]。")
    assert with_rules(off, {}, unsupported=True).refusal == ""
    assert with_rules(off, {}, unsupported=True, off_question=True).refusal == "off_question"
    assert with_rules(replace(off, answer="30 天内 [1]。"), {}, True, True).refusal == ""
    kinds = summarise([*outcomes, off], {}, unsupported=True, off_question=True)
    assert kinds["answerable"]["refused_off_question"] == 1 / 5 and kinds["answerable"]["accuracy"] == 3 / 5
    # A figure read off the wrong line (English, saved with its sources): withheld by the look-alike rule.
    passage = ("A joint membership for two adults costs £78.00 a month.\n\n"
               "A joining fee of £20 applies when you pay monthly.")
    joint = replace(outcomes[1], language="en", question="How much is a joint membership for two adults a month?",
                    answer="It costs £20 a month [1].", sources=[{"number": 1, "text": passage, "section": ""}])
    look_alike = look_alike_rule(BM25Tokenizer().tokenize, margin=2)
    assert with_rules(joint, {}, True, True).refusal == ""  # the kind rule alone: money asked, money given
    assert with_rules(joint, {}, True, True, look_alike).refusal == "off_question"
    assert with_rules(replace(joint, answer="It costs £78.00 a month [1]."), {}, True, True, look_alike).refusal == ""
    assert with_rules(replace(joint, sources=[]), {}, True, True, look_alike).refusal == ""  # saved without sources
    # A figure the model was unsure of: withheld below the language's cutoff, where a confidence was recorded.
    unsure = replace(joint, answer="It costs £78.00 a month [1].", figure_confidence=0.3)
    assert with_rules(unsure, {}, True, True, look_alike).refusal == ""
    assert with_rules(unsure, {}, True, True, look_alike, {"en": 0.5}).refusal == "unsure"
    assert with_rules(unsure, {}, True, True, look_alike, {"zh": 0.5}).refusal == ""
    assert with_rules(replace(unsure, figure_confidence=None), {}, True, True, look_alike, {"en": 0.5}).refusal == ""
    assert summarise([unsure], {}, True, True, look_alike, {"en": 0.5})["answerable"]["refused_unsure"] == 1.0
    # Placed on a development sample (see the next test).
    assert place_check_cutoff(outcomes, "en") is None  # no English question


def test_the_check_cutoff_is_placed_within_the_accuracy_budget_and_only_where_it_pays() -> None:
    right = [_outcome("answerable", round(0.2 + i / 100, 2), True) for i in range(60)]  # 0.20 .. 0.79
    wrong = [_outcome("answerable", 0.1), _outcome("answerable", None, refusal="no_evidence")]
    holes = [_outcome("hole", v) for v in (0.05, 0.15, 0.25, 0.42, 0.95)]
    placed = place_check_cutoff(right + wrong * 20 + holes, "zh")  # 100 answerable, 60 answered right
    assert placed is not None and placed.answerable == 100 and placed.right == 60
    # 2 points of 100 questions = 2 right answers, 5% of 60 = 3: two may go, so the cutoff is the
    # third-lowest right verdict (0.20 and 0.21 lost; the wrong answers at 0.1 cost no accuracy).
    assert (placed.candidate, placed.lost) == (0.22, 2)
    assert placed.refused == 2 and placed.unanswerable == 5  # the holes at 0.05 and 0.15
    assert placed.cutoff == 0.0 and "off" in placed.describe()  # refuses 2, loses 2: it does not pay
    # With few right answers the 5% bound is the tighter one: none may go.
    few = place_check_cutoff(right[:8] + wrong * 46 + holes, "zh")
    assert few is not None and (few.candidate, few.lost, few.refused) == (0.2, 0, 2)
    assert few.cutoff == 0.2 and "min_yes_zh: 0.200" in few.describe()
    # An answer the support rule withholds anyway (no citation) counts neither way.
    uncited = [replace(h, cited=0) for h in holes]
    assert place_check_cutoff(right[:8] + wrong * 46 + uncited, "zh").refused == 0  # type: ignore[union-attr]
    assert place_check_cutoff(right[:8] + wrong * 46 + uncited, "zh", unsupported=False).refused == 2  # type: ignore[union-attr]


def test_left_out_documents_are_absent_from_retrieval(samples_kb) -> None:
    question = "入职满五年的正式员工每年有几天带薪年假？"
    result = samples_kb.retriever.run(question)
    assert any(c.chunk.source.endswith("employee_handbook_zh.md") for c in result.chunks)
    gone = samples_kb.retriever.run(question, leave_out=lambda c: c.source.endswith("employee_handbook_zh.md"))
    assert gone.chunks or gone.below_threshold
    assert not any(c.chunk.source.endswith("employee_handbook_zh.md") for c in gone.chunks + gone.below_threshold)


def test_saved_answers_are_recited_under_the_current_rules_as_the_answerer_cited_them(samples_kb) -> None:
    """Each outcome keeps the model's text and the quoted sources, so a later citation rule can be
    scored on saved answers without the LLM: re-deciding with the same rules gives the same result."""
    question = "入职满五年的正式员工每年有几天带薪年假？"
    case = AnswerCase("q1", question, "answerable", answers=("18 天",))
    # As rag-eval runs the answerer: the refusal rules after the run (with_rules), not during it.
    settings = AnswerSettings(refuse_unsupported=False, refuse_off_question=False)
    for reply, inferred in (("每年 18 天 [1]。", False), ("入职满五年的正式员工每年享有 18 天带薪年假。", True),
                            ("每年 25 天 [1]。", False)):
        outcome = run_case(Answerer(samples_kb, ScriptedLLM([reply]), settings), case)
        assert outcome.model_answer == reply and outcome.sources and not outcome.refusal
        assert (outcome.answer != reply) == inferred  # the app appended the inferred citation's marker
        recited = recite(outcome, samples_kb.tokenizer.tokenize, settings.infer_min_support)
        assert (recited.cited, recited.cited_with_gold) == (outcome.cited, outcome.cited_with_gold), reply
        assert outcome.cited == (0 if "25" in reply else 1)  # a figure no source states is not cited
        saved = AnswerOutcome(**json.loads(json.dumps(asdict(outcome))))  # as written to and read from disk
        assert recite(saved, samples_kb.tokenizer.tokenize, settings.infer_min_support) == recited
    assert recite(replace(outcome, sources=[]), samples_kb.tokenizer.tokenize, 0.6) == replace(outcome, sources=[])


def test_rag_eval_answers_end_to_end(tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    monkeypatch.setenv("RAG_LLM__CACHE_DIR", os.environ.get("RAG_LLM_CACHE_DIR", str(REPO / "data" / "models")))
    monkeypatch.setenv("RAG_LLM__MAX_NEW_TOKENS", "48")
    folder = tmp_path / "samples-qa"
    (folder / "qrels").mkdir(parents=True)
    (folder / "documents.txt").write_text(os.path.relpath(SAMPLES, folder), encoding="utf-8")
    questions = {"q1": ("What is the maximum upload size per file in Lumen Beacon 3.2?", ["200 MB"]),
                 "q2": ("How many days of annual leave do employees with five years get?", ["18"]),
                 "q3": ("入职满五年的正式员工每年有几天带薪年假？", ["18 天"]),
                 "q4": ("How many parking spaces does the Hangzhou office have?", [])}
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": q}) + "\n" for k, (q, _) in questions.items()), encoding="utf-8")
    (folder / "answers.jsonl").write_text(
        "".join(json.dumps({"_id": k, "answers": a}) + "\n" for k, (_, a) in questions.items()), encoding="utf-8")
    (folder / "qrels" / "dev.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\trelease_notes_en.pdf\t1\nq2\temployee_handbook_zh.md\t1\n"
        "q3\temployee_handbook_zh.md\t1\n", encoding="utf-8")
    out_json = tmp_path / "answers.json"
    code = eval_cli.main([str(folder), "--data-root", str(tmp_path / "kbs"), "--answers", "2", "--answer-holes", "1",
                          "--json", str(out_json)])
    assert code == 0
    printed = capsys.readouterr().out
    for rules in ("none", "check", "check + support", "check + support + kind", "check + support + kind + sure"):
        assert f"| samples-qa | {rules} |" in printed
    dump = json.loads(out_json.read_text(encoding="utf-8"))["samples-qa"]
    assert dump["llm"].startswith("ik_llama:") and dump["rules_off"]["answerable"]["questions"] == 2
    assert dump["rules_off"]["hole"]["questions"] == 1 and dump["rules_off"]["unanswerable"]["questions"] == 1
    # Named by model and prompt budget: runs comparing them do not overwrite each other's answers.
    assert Path(dump["outcomes"]).name == "answers-ik_llama_qwen2.5-coder-0.5b-instruct-ctx700-0-0-4.json"
    outcomes = json.loads(Path(dump["outcomes"]).read_text(encoding="utf-8"))["outcomes"]
    assert len(outcomes) == 4 and all(o["refusal"] != "error" for o in outcomes)
    # The run observes the rules applied after generation and refuses by none of them: each row above
    # applies them to the same answers (the figure confidence recorded where ik_llama read one).
    assert not any(o["refusal"] in ("unsupported", "off_question", "unsure") for o in outcomes)
    assert all("figure_confidence" in o for o in outcomes)
    hole = next(o for o in outcomes if o["kind"] == "hole")
    assert not any(s in hole["answer"] for s in ("<<<", "=== "))
    # A folder without gold answers is refused with a reason, not a traceback.
    (folder / "answers.jsonl").unlink()
    assert eval_cli.main([str(folder), "--answers", "2"]) == 1
    assert "no answers.jsonl" in capsys.readouterr().err
