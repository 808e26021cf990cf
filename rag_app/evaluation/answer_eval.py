"""Answer-level evaluation: questions through the whole answerer (retrieval, threshold, answer check,
LLM, citations), scored against gold answers, and refusal where refusing is right.

Three kinds of question, from one BEIR folder that has ``answers.jsonl``
(``{"_id": query id, "answers": [...]}``):

* ``answerable``: a judged question with its gold answers. Right = a gold answer contained in the
  answer after normalisation; also character F1 (Chinese) or token F1 (English).
* ``hole``: the same kind of question with its judged documents left out of retrieval (the topic is
  still in the knowledge base, the answer is not). Right = a refusal.
* ``offtopic``: a question from another folder (same language, topics the knowledge base does not
  cover). Right = a refusal.
* ``unanswerable``: a question of the folder whose gold answer list is empty (written to sound like
  the documents, which do not hold the answer). Right = a refusal.

The answer check's verdict is recorded for every answered question, so one run gives the figures
with the check at any cutoff (the check runs before generation and changes nothing else): the run
itself uses cutoff 0, and :func:`summarise` applies the configured one.
"""
from __future__ import annotations

import json
import math
import random
import re
import statistics
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any, Literal

import numpy as np

from ingest.beir import corpus_id_of, load_qrels, load_queries
from ingest.types import Chunk
from rag_app.answering import Answerer, FinalEvent, NumberedSource
from rag_app.answering.answer_kind import missing_kind
from rag_app.answering.citations import Citation, Tokenize, resolve_citations
from rag_app.answering.language import Language, detect_language
from rag_app.answering.look_alike import better_fitting_line
from rag_app.evaluation.calibration import auc
from rag_app.retrieval.results import RetrievalResult, RetrievedChunk

CaseKind = Literal["answerable", "hole", "offtopic", "unanswerable"]
KINDS: tuple[CaseKind, ...] = ("answerable", "hole", "offtopic", "unanswerable")


@dataclass(frozen=True)
class AnswerCase:
    qid: str
    question: str
    kind: CaseKind
    answers: tuple[str, ...] = ()  # gold answers (answerable questions)
    leave_out: frozenset[str] = frozenset()  # documents treated as absent (holes): see document_key
    history: tuple[Mapping[str, str], ...] = ()


@dataclass
class AnswerOutcome:
    qid: str
    kind: CaseKind
    question: str
    language: Language
    answer: str
    # "" (answered), "no_evidence", "not_in_sources", "model", "unsupported", "off_question", "unsure", "error"
    refusal: str
    answer_check: float | None
    contained: bool
    f1: float
    cited: int  # citations on the answer
    cited_with_gold: int  # of those, chunks holding a gold answer
    first_token_s: float | None
    total_s: float
    check_s: float | None
    query: str = ""
    gold: list[str] = field(default_factory=list)
    # What citations are decided from, so saved answers can be re-scored under later citation rules
    # (:func:`recite`): the model's text, and the quoted sources (number, text, heading path).
    model_answer: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    # The lowest probability of the answer's figures' tokens (answering.figure_confidence); None
    # without a figure, a generation, or a backend that reads probabilities (and in older files).
    figure_confidence: float | None = None


# --- gold answers -----------------------------------------------------------------------------------


def load_answers(folder: Path) -> dict[str, list[str]]:
    """``answers.jsonl`` of a BEIR folder: query id -> gold answers (none for unanswerable ones)."""
    out: dict[str, list[str]] = {}
    with open(Path(folder) / "answers.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["_id"])] = [str(a) for a in row.get("answers") or [] if str(a).strip()]
    return out


_PUNCT = set(string.punctuation) | {
    ch for ch in "，。、；：？！“”‘’（）《》【】「」『』—…·～﹏" if ch
}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise_answer(text: str, language: Language) -> str:
    """SQuAD-style normalisation: NFKC, lower case, no punctuation; English articles dropped and
    spaces collapsed; for Chinese every space dropped (CMRC's convention)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    if language == "zh":
        return "".join(text.split())
    return " ".join(_ARTICLES.sub(" ", text).split())


def _units(text: str, language: Language) -> list[str]:
    norm = normalise_answer(text, language)
    return list(norm) if language == "zh" else norm.split()


def answer_f1(answer: str, gold: str, language: Language) -> float:
    """Character F1 (Chinese) or token F1 (English) between an answer and one gold answer."""
    a, g = _units(answer, language), _units(gold, language)
    common = sum((Counter(a) & Counter(g)).values())
    if not a or not g or common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(g)
    return 2 * precision * recall / (precision + recall)


def contains_gold(text: str, golds: Iterable[str], language: Language) -> bool:
    norm = normalise_answer(text, language)
    return any((g := normalise_answer(gold, language)) and g in norm for gold in golds)


# --- the questions ----------------------------------------------------------------------------------


def answer_cases(
    folder: Path,
    *,
    answerable: int,
    holes: int,
    offtopic_folder: Path | None = None,
    offtopic: int = 0,
    split: str = "dev",
    seed: int = 0,
    offset: int = 0,
) -> list[AnswerCase]:
    """A seeded sample: ``answerable`` judged questions with gold answers, ``holes`` other ones with
    their judged documents left out, ``offtopic`` questions from ``offtopic_folder``; and every
    question whose gold answer list is empty (``unanswerable``).

    Each pool is shuffled once by ``seed`` and read from position ``offset`` of each kind's share:
    a development sample (offset 0) and a test sample (offset past it) never share a question."""
    queries, qrels, golds = load_queries(folder), load_qrels(folder, split), load_answers(folder)
    pool = sorted(q for q in qrels if q in queries and golds.get(q))
    random.Random(seed).shuffle(pool)
    # Answerable questions from the front of the pool, holes from the back: offsets move both inwards.
    front = pool[offset : offset + answerable]
    back = pool[len(pool) - offset - holes : len(pool) - offset] if holes else []
    too_few = offset + answerable > len(pool) or (holes > 0 and len(pool) - offset - holes < 0)
    if too_few or set(front) & set(back):
        raise ValueError(f"{folder} has {len(pool)} judged questions with answers: too few for this sample")
    cases = [AnswerCase(q, queries[q], "answerable", tuple(golds[q])) for q in front]
    for q in back:
        judged = frozenset(cid for cid, grade in qrels[q].items() if grade > 0)
        cases.append(AnswerCase(q, queries[q], "hole", tuple(golds[q]), leave_out=judged))
    cases += [AnswerCase(q, queries[q], "unanswerable") for q in sorted(queries) if q in golds and not golds[q]]
    if offtopic_folder is not None and offtopic > 0:
        others = load_queries(offtopic_folder)
        keys = sorted(others)
        random.Random(seed).shuffle(keys)
        cases += [AnswerCase(f"{offtopic_folder.name}:{k}", others[k], "offtopic")
                  for k in keys[offset : offset + offtopic]]
    return cases


# --- running them -----------------------------------------------------------------------------------


def document_key(source: str) -> str:
    """What qrels name a chunk's document by: the BEIR corpus id, or an ordinary file's name."""
    return corpus_id_of(source) or PurePath(source).name


class _LeavingOut:
    """The knowledge base as the answerer sees it, with some BEIR documents treated as absent."""

    def __init__(self, kb: Any, corpus_ids: frozenset[str]) -> None:
        self._kb = kb
        self._corpus_ids = corpus_ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kb, name)

    @property
    def retriever(self) -> Any:
        return self

    def _absent(self, chunk: Chunk) -> bool:
        return document_key(chunk.source) in self._corpus_ids

    def run(self, query: str, top_k: int | None = None) -> RetrievalResult:
        result: RetrievalResult = self._kb.retriever.run(query, top_k=top_k, leave_out=self._absent)
        return result


def run_case(answerer: Answerer, case: AnswerCase) -> AnswerOutcome:
    t0 = time.perf_counter()
    if case.leave_out:
        answerer = Answerer(_LeavingOut(answerer.kb, case.leave_out), answerer.get_llm(), answerer.settings,
                            top_k=answerer.top_k)
    final = answerer.answer(case.question, list(case.history))
    language = detect_language(case.question)
    if not isinstance(final, FinalEvent):
        return AnswerOutcome(case.qid, case.kind, case.question, language, final.message, "error", None, False,
                             0.0, 0, 0, None, time.perf_counter() - t0, None, gold=list(case.answers))
    golds = case.answers
    answered = not final.refused
    cited_with_gold = _cited_with_gold(final.citations, golds, language)
    return AnswerOutcome(
        qid=case.qid,
        kind=case.kind,
        question=case.question,
        language=final.language,
        answer=final.answer,
        refusal=final.refusal,
        answer_check=final.answer_check,
        contained=answered and contains_gold(final.answer, golds, language),
        f1=max((answer_f1(final.answer, g, language) for g in golds), default=0.0) if answered else 0.0,
        cited=len(final.citations),
        cited_with_gold=cited_with_gold,
        first_token_s=final.timings.get("first_token_s"),
        total_s=final.timings.get("total_s", time.perf_counter() - t0),
        check_s=final.timings.get("check_s"),
        query=final.query,
        gold=list(golds),
        model_answer=_model_answer(final),
        sources=[{"number": s.number, "text": s.chunk.text, "section": s.chunk.section} for s in final.sources],
        figure_confidence=final.figure_confidence,
    )


def _model_answer(final: FinalEvent) -> str:
    """What the model wrote: a withheld answer's draft, or the answer without the marker of an
    inferred citation (the app appended it)."""
    text = final.draft or final.answer
    marker = next((c.marker for c in final.citations if c.inferred), "")
    return text[: -len(marker)] if marker and text.endswith(marker) else text


def recite(outcome: AnswerOutcome, tokenize: Tokenize, infer_min_support: float | None) -> AnswerOutcome:
    """``outcome`` with its citations decided again by the current rules
    (:func:`rag_app.answering.citations.resolve_citations`) from the saved model answer and sources;
    unchanged when it was refused before generation or saved without them."""
    if outcome.refusal or not outcome.sources or not outcome.model_answer:
        return outcome
    sources = [
        NumberedSource(int(s["number"]), RetrievedChunk(
            Chunk(f"saved-{s['number']}", "", "", str(s["text"]), 0, section=str(s.get("section") or "")),
            0.0, 0.0, 0.0, 0.0, None, None, 0.0))
        for s in outcome.sources
    ]
    citations = resolve_citations(outcome.model_answer, sources, outcome.query or outcome.question, tokenize,
                                  infer_min_support)
    return replace(outcome, cited=len(citations),
                   cited_with_gold=_cited_with_gold(citations, outcome.gold, outcome.language))


def _cited_with_gold(citations: Sequence[Citation], golds: Sequence[str], language: Language) -> int:
    """How many cited chunks hold a gold answer (citation precision's numerator)."""
    return sum(contains_gold(c.source.chunk.text, golds, language) for c in citations)


def run_cases(
    answerer: Answerer, cases: Sequence[AnswerCase], progress: Callable[[AnswerOutcome], None] | None = None
) -> list[AnswerOutcome]:
    outcomes = []
    for case in cases:
        outcome = run_case(answerer, case)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes


# --- figures ----------------------------------------------------------------------------------------


LookAlike = Callable[[AnswerOutcome], bool]


def look_alike_rule(tokenize: Tokenize, margin: float) -> LookAlike:
    """The answerer's look-alike check (part of ``answer.refuse_off_question``) on a saved outcome: its
    figure read off a line that fits the question clearly less than another (English answers saved
    with their sources; others are never judged)."""
    def is_look_alike(outcome: AnswerOutcome) -> bool:
        return outcome.language == "en" and bool(outcome.sources) and better_fitting_line(
            outcome.question, outcome.answer,
            [(str(s["text"]), str(s.get("section") or "")) for s in outcome.sources], tokenize, margin
        ) is not None
    return is_look_alike


def with_rules(
    outcome: AnswerOutcome, cutoff: Mapping[str, float], unsupported: bool = False, off_question: bool = False,
    look_alike: LookAlike | None = None, sure: Mapping[str, float] | None = None,
) -> AnswerOutcome:
    """The outcome under the refusal rules, in the answerer's order: the answer check refusing below
    ``cutoff[language]`` (answers with a recorded verdict); with ``unsupported`` an answer with no
    citation withheld (``answer.refuse_unsupported``); with ``off_question`` an answer that gives no
    value of the kind its question asks for (``answer.refuse_off_question``), and with ``look_alike``
    too (:func:`look_alike_rule`) one whose figure is a look-alike; with ``sure`` one whose figure
    confidence is below ``sure[language]`` (``answer.min_figure_confidence_*``; answers with a
    recorded confidence). Refusals of other kinds stay as they are."""
    if outcome.refusal:
        return outcome
    score = outcome.answer_check
    if score is not None and score < cutoff.get(outcome.language, 0.0):
        refusal = "not_in_sources"
    elif unsupported and outcome.cited == 0:
        refusal = "unsupported"
    elif off_question and (missing_kind(outcome.question, outcome.answer, outcome.language) is not None
                           or (look_alike is not None and look_alike(outcome))):
        refusal = "off_question"
    elif (sure and outcome.figure_confidence is not None
          and outcome.figure_confidence < sure.get(outcome.language, 0.0)):
        refusal = "unsure"
    else:
        return outcome
    return AnswerOutcome(**{**asdict(outcome), "refusal": refusal, "contained": False, "f1": 0.0,
                            "cited": 0, "cited_with_gold": 0})


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def _median(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def summarise(
    outcomes: Sequence[AnswerOutcome], cutoff: Mapping[str, float] | None = None, unsupported: bool = False,
    off_question: bool = False, look_alike: LookAlike | None = None, sure: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Per kind: counts, accuracy and F1 (answerable), refusal shares by cause, citation precision,
    latency medians; ``cutoff``, ``unsupported``, ``off_question``, ``look_alike`` and ``sure`` apply
    the refusal rules of :func:`with_rules` (none: the outcomes as recorded)."""
    rows = [with_rules(o, cutoff or {}, unsupported, off_question, look_alike, sure) for o in outcomes]
    out: dict[str, Any] = {}
    for kind in KINDS:
        group = [o for o in rows if o.kind == kind]
        if not group:
            continue
        cited = sum(o.cited for o in group)
        out[kind] = {
            "questions": len(group),
            "accuracy": _share([o.contained for o in group]),
            "f1": statistics.fmean(o.f1 for o in group),
            "answered": _share([not o.refusal for o in group]),
            "refused": _share([bool(o.refusal) and o.refusal != "error" for o in group]),
            "refused_threshold": _share([o.refusal == "no_evidence" for o in group]),
            "refused_check": _share([o.refusal == "not_in_sources" for o in group]),
            "refused_model": _share([o.refusal == "model" for o in group]),
            "refused_unsupported": _share([o.refusal == "unsupported" for o in group]),
            "refused_off_question": _share([o.refusal == "off_question" for o in group]),
            "refused_unsure": _share([o.refusal == "unsure" for o in group]),
            "errors": sum(o.refusal == "error" for o in group),
            "citation_precision": sum(o.cited_with_gold for o in group) / cited if cited else float("nan"),
            "cited_answers": _share([o.cited > 0 for o in group if not o.refusal]),
            "prompt_markup": sum("<<<" in o.answer or "=== " in o.answer for o in group),
            "first_token_p50_s": _median(o.first_token_s for o in group),
            "total_p50_s": _median(o.total_s for o in group),
            "check_p50_s": _median(o.check_s for o in group),
        }
    unanswerable = [o for o in rows if o.kind != "answerable"]
    if unanswerable:
        out["unanswerable_refused"] = _share([bool(o.refusal) and o.refusal != "error" for o in unanswerable])
    out["check_auc"] = check_separation(outcomes)
    return out


def check_separation(outcomes: Sequence[AnswerOutcome]) -> float:
    """How well the answer check's verdict separates the answerable questions from the others, among
    those that reached it: P(an answerable question's verdict > an unanswerable one's), NaN when
    either side is empty."""
    def verdicts(answerable: bool) -> np.ndarray:
        return np.array([o.answer_check for o in outcomes
                         if o.answer_check is not None and (o.kind == "answerable") == answerable], dtype=float)
    return auc(verdicts(True), verdicts(False))


@dataclass(frozen=True)
class CheckPlacement:
    """The answer check's cutoff for one language, placed on a development sample.

    ``candidate`` is the highest cutoff whose cost stays within budget on that sample: at most
    ``max_drop`` of its answerable questions' accuracy (the product's target) and at most
    ``1 - keep`` of its *right* answers (an answerable question answered with its gold answer;
    refusing a wrong answer costs no accuracy). The second bound matters where the model answers few
    questions right, so that one question is a large share of them. ``refused`` counts the
    unanswerable questions (holes, off-topic, written) it turns into refusals, ``lost`` the right
    answers it costs. ``cutoff`` is the candidate where it refuses more than it loses, else 0: the
    check then never refuses (its verdict still runs and is recorded)."""

    language: Language
    candidate: float
    answerable: int
    right: int
    lost: int
    refused: int
    unanswerable: int

    @property
    def cutoff(self) -> float:
        return self.candidate if self.refused > self.lost else 0.0

    def describe(self) -> str:
        verdict = (f"min_yes_{self.language}: {self.cutoff:.3f}" if self.cutoff
                   else f"min_yes_{self.language}: 0 (off: its best cutoff {self.candidate:.3f} would not pay)")
        return (f"{verdict}; at {self.candidate:.3f} it keeps {self.right - self.lost} of {self.right} right"
                f" answers ({self.answerable} answerable questions) and refuses {self.refused} of"
                f" {self.unanswerable} answered unanswerable questions")


def place_check_cutoff(
    outcomes: Sequence[AnswerOutcome], language: Language, max_drop: float = 0.02, keep: float = 0.95,
    unsupported: bool = True, off_question: bool = True, look_alike: LookAlike | None = None,
) -> CheckPlacement | None:
    """Place the answer check's cutoff on a development sample (see :class:`CheckPlacement`). Only
    answers that reach the check and survive the other rules that are on (``unsupported``:
    ``answer.refuse_unsupported``; ``off_question``: ``answer.refuse_off_question``) count: the
    check's value is what it adds to them. None without a right answer of ``language``."""
    # (verdict, right answer?, answerable?) of the answers that reach the check and would stand.
    reaching = [(o.answer_check, o.contained, o.kind == "answerable") for o in outcomes
                if o.language == language and o.answer_check is not None
                and not with_rules(o, {}, unsupported, off_question, look_alike).refusal]
    right = sorted(score for score, contained, answerable in reaching if answerable and contained)
    if not right:
        return None
    answerable = sum(o.kind == "answerable" and o.language == language for o in outcomes)
    affordable = int(math.floor(min(max_drop * answerable, (1 - keep) * len(right)) + 1e-9))
    candidate = right[min(len(right) - 1, affordable)]
    others = [score for score, _, is_answerable in reaching if not is_answerable]
    return CheckPlacement(
        language=language, candidate=candidate, answerable=answerable, right=len(right),
        lost=sum(s < candidate for s in right), refused=sum(s < candidate for s in others),
        unanswerable=len(others),
    )


def save_outcomes(path: Path, outcomes: Sequence[AnswerOutcome], extra: Mapping[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**(extra or {}), "outcomes": [asdict(o) for o in outcomes]}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def load_outcomes(path: Path) -> list[AnswerOutcome]:
    return [AnswerOutcome(**row) for row in json.loads(path.read_text(encoding="utf-8"))["outcomes"]]
