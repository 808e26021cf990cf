"""Citations: the ``[n]`` markers of an answer resolved to the sources quoted under those numbers,
or, when the model cited nothing, the one source that clearly supports the answer."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .prompt import NumberedSource

# [1]  [1, 2]  [1,2]  [1-3]  【1】  【1，2】  [1、2]: one bracket holding numbers, lists or ranges.
_NUMBERS_SEP = r"\s*(?:[,，、;；]|[-–~])\s*"
_CITATION_BODY = r"\d{1,3}(?:" + _NUMBERS_SEP + r"\d{1,3})*"
_CITATION_RE = re.compile(r"[\[【]\s*(" + _CITATION_BODY + r")\s*[\]】]")
_NUM_SPLIT_RE = re.compile(r"\s*[,，、;；]\s*")
_RANGE_RE = re.compile(r"^(\d+)\s*[-–~]\s*(\d+)$")
_MAX_RANGE = 20  # "[1-999]" is not a citation
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
# An answer saying the documents don't cover it must not get a citation pinned on it.
_DONT_KNOW_RE = re.compile(
    r"don['’]t know|do not know|not (?:mention|say|contain|provide|specif|state|include)|no information|"
    r"cannot answer|can['’]t answer|unable to answer|no (?:mention|answer)|"
    r"不知道|没有相关|未提及|没有提及|没有提到|没有提供|没有说明|没有给出|无法回答|无法确定|不清楚|没有找到|未找到|"
    r"(?:文档|资料|来源)中?(?:并)?(?:没有|未|不包含)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Citation:
    """A ``[n]`` in the answer resolved to the exact chunk that was quoted as source n.

    ``inferred``: the model cited nothing and the app attributed the answer to this source (the one
    that contains the answer's terms and numbers); the marker was appended to the answer.
    """

    number: int
    source: NumberedSource
    inferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**self.source.to_dict(), "inferred": self.inferred}

    @property
    def marker(self) -> str:
        """What the app appends to an answer the citation was inferred for: " [n]"."""
        return f" [{self.number}]"


def parse_citation_numbers(text: str) -> list[int]:
    """Citation numbers in order of first mention: ``[1]``, ``[1, 2]``, ``[2-3]``, ``【1】``, ``【1，2】``."""
    seen: dict[int, None] = {}
    for match in _CITATION_RE.finditer(text):
        for part in _NUM_SPLIT_RE.split(match.group(1).strip()):
            rng = _RANGE_RE.match(part)
            if rng:
                a, b = int(rng.group(1)), int(rng.group(2))
                if a <= b and b - a < _MAX_RANGE:
                    seen.update(dict.fromkeys(range(a, b + 1)))
            elif part.isdigit():
                seen[int(part)] = None
    return list(seen)


def map_citations(text: str, sources: Sequence[NumberedSource]) -> list[Citation]:
    """Resolve ``[n]`` markers to the quoted sources; numbers out of range are ignored."""
    by_number = {s.number: s for s in sources}
    return [Citation(n, by_number[n]) for n in parse_citation_numbers(text) if n in by_number]


Tokenize = Callable[[str], list[str]]


# A reply that is only markers, in the grammar the citations are parsed with; and a marker still
# being streamed: an opening bracket with the start of its numbers ("[", "[1", "【1，").
_MARKER = r"[\[【]\s*" + _CITATION_BODY + r"\s*[\]】]"
_MARKER_GAP = r"[\s,，。.、;；]*"
_MARKER_START = r"[\[【]\s*(?:\d{1,3}(?:" + _NUMBERS_SEP + r"\d{0,3})*)?\s*"
_BARE_RE = re.compile(r"\s*(?:" + _MARKER + _MARKER_GAP + r")+")
_BARE_SO_FAR_RE = re.compile(r"\s*(?:" + _MARKER + _MARKER_GAP + r")*(?:" + _MARKER_START + r")?")


def is_bare_citation(text: str) -> bool:
    """Nothing but citation markers ("[1]", "[1, 2]。", "【1】"): a source named, no answer written."""
    return bool(_BARE_RE.fullmatch(text))


def may_be_bare_citation(text: str) -> bool:
    """A reply streamed so far that is still nothing but markers, or the start of one ("", "[", "[1")."""
    return bool(_BARE_SO_FAR_RE.fullmatch(text))


def is_non_answer(answer: str) -> bool:
    """The model said that it does not know or that the documents do not say (a refusal in its words)."""
    return not answer.strip() or bool(_DONT_KNOW_RE.search(answer))


# An attribution says where an answer comes from, not what it says ("According to the release
# notes, ...", "Based on the information provided in the documents, ...", "根据资料，..."). Left in,
# its words count as the answer's own, and a source that states the answer word for word still
# falls short of them. It may name a source's whole label, heading path included ("According to the
# information provided in the Leisure Centres, Swimming Pools and Parks > Swimming prices, ...").
_ATTRIBUTION_RE = re.compile(
    r"(?:^|(?<=[.!?]\s)|(?<=[。！？]))\s*(?:"
    # "." only where a file name has it ("in the travel_and_expenses.md file,"), not a sentence's end.
    r"(?:according to|based on|as (?:stated|mentioned|described|noted|shown) in|as per)\b"
    r"(?:[^,，.。]|\.(?=\w)){0,160}[,，]"
    r"|(?:根据|依据|按照)(?:所给|提供的|上述|以上|这些|该)?(?:的)?(?:资料|文档|文件|来源|内容|信息|材料)[^，,。]{0,8}[，,]"
    r")",
    re.IGNORECASE,
)


# Words that only say what kind of thing was asked ("How much is a Weekend First upgrade?" answered
# "... costs £5" from a price table that never says "cost"), talk about the answering itself
# ("The answer to this question is 7 working days", "you would need to pay £38", "Yes, ...",
# "Therefore, we get 20% off"), or join a figure to its unit ("£12.60 per hour" for "£12.60 an
# hour"): not the answer's own content.
_FRAME_WORDS = ("cost costs price prices priced charge charges charged pay pays paid take takes took last lasts"
                " need needs needed answer answers question yes therefore per")


# "you're", "I'm", "we'll": the tokenizer keeps "re", "m", "ll" as words; they say nothing.
_CONTRACTION_RE = re.compile(r"(?<=[a-z])['’](?:re|m|ll|ve|d)\b", re.IGNORECASE)


def new_terms(answer: str, question: str, tokenize: Tokenize) -> set[str]:
    """The answer's own content: its distinct terms (the BM25 tokenizer's: jieba words, stemmed
    English, stopwords dropped), attributions and frame words left out, that the question did not
    already hold. Empty for a restatement."""
    content = _CONTRACTION_RE.sub("", _ATTRIBUTION_RE.sub(" ", _CITATION_RE.sub(" ", answer)))
    return set(tokenize(content)) - set(tokenize(question)) - set(tokenize(_FRAME_WORDS))


def new_numbers(text: str, question: str) -> set[str]:
    """The numbers of ``text`` that the question did not already state: those a source must hold
    ("... if I set off at 8am?" answered "... at 8am is £13": only the 13 is the answer's)."""
    return set(_NUMBER_RE.findall(_CITATION_RE.sub(" ", text))) - set(_NUMBER_RE.findall(question))


_CJK_RE = re.compile(r"[\u3400-\u9fff]")


def held_terms(terms: set[str], text: str, tokenize: Tokenize) -> set[str]:
    """The ``terms`` that ``text`` holds: among its tokens, or for a Chinese term anywhere in it
    (jieba can cut the same words differently in another sentence: "玉汝" vs "字玉" + "汝")."""
    tokens = set(tokenize(text))
    return {t for t in terms if t in tokens or (_CJK_RE.search(t) is not None and t in text)}


_SENTENCE_END_RE = re.compile(r"[。！？!?；;]|\.(?=\s|$)")


def cited_claims(answer: str) -> dict[int, str]:
    """For each cited number, the text it was attached to: from the end of the previous sentence
    (or the previous marker) up to the marker; a marker right after a sentence's end cites that
    sentence. Several markers of one number: their claims joined."""
    claims: dict[int, list[str]] = {}
    start, claim = 0, ""
    for match in _CITATION_RE.finditer(answer):
        before = answer[start : match.start()].strip()
        if before:  # "[1][2]": adjacent markers cite the same claim
            # "…天。 [1]" cites the sentence that just ended; "…天 [1]。" the one it sits in.
            body = before[:-1] if _SENTENCE_END_RE.fullmatch(before[-1]) else before
            ends = [m.end() for m in _SENTENCE_END_RE.finditer(body)]
            claim = body[ends[-1] :].strip() if ends else body
        for n in parse_citation_numbers(match.group(0)):
            claims.setdefault(n, []).append(claim)
        start = match.end()
    return {n: " ".join(parts) for n, parts in claims.items()}


def supported_citations(
    citations: Sequence[Citation], answer: str, question: str, tokenize: Tokenize
) -> list[Citation]:
    """The model's citations that stand: none on a non-answer or a restatement of the question; a
    source must hold at least one of the answer's own terms, and every number of the claim it is
    cited for that the question did not state (a figure the source does not state must not look
    supported)."""
    if is_non_answer(answer):
        return []
    own = new_terms(answer, question, tokenize)
    if not own:
        return []
    claims = cited_claims(answer)
    kept = []
    for c in citations:
        text = c.source.chunk.indexed_text  # its heading path is quoted with it (the source's label)
        numbers = new_numbers(claims.get(c.number, ""), question)
        if held_terms(own, text, tokenize) and all(n in text for n in numbers):
            kept.append(c)
    return kept


def infer_citation(
    answer: str,
    sources: Sequence[NumberedSource],
    tokenize: Tokenize,
    min_support: float,
    question: str = "",
) -> Citation | None:
    """The source that supports an uncited answer, or None when none clearly does.

    Support = the share of the answer's own terms (:func:`new_terms`: what the question did not
    already say, so a restatement of the question supports nothing) that occur in the source; every
    number in the answer must also occur in it (a hallucinated figure must not look supported).
    Ties go to the better-ranked source.
    """
    if is_non_answer(answer):
        return None
    terms = new_terms(answer, question, tokenize)
    if not terms:  # a restatement of the question: nothing of its own to support
        return None
    numbers = new_numbers(answer, question)
    best: tuple[float, NumberedSource] | None = None
    for s in sources:
        text = s.chunk.indexed_text  # its heading path is quoted with it (the source's label)
        if any(n not in text for n in numbers):
            continue
        support = len(held_terms(terms, text, tokenize)) / len(terms)
        if support >= min_support and (best is None or support > best[0]):
            best = (support, s)
    return Citation(best[1].number, best[1], inferred=True) if best else None


def resolve_citations(
    answer: str, sources: Sequence[NumberedSource], question: str, tokenize: Tokenize,
    infer_min_support: float | None,
) -> list[Citation]:
    """The citations an answer ends with: the model's own that stand, or else (with
    ``infer_min_support``) the one source that clearly supports it, marked ``inferred``. One place,
    so the answerer and a re-scoring of saved answers (``rag_app.evaluation``) agree."""
    citations = supported_citations(map_citations(answer, sources), answer, question, tokenize)
    if not citations and infer_min_support is not None and not is_non_answer(answer):
        inferred = infer_citation(answer, sources, tokenize, infer_min_support, question)
        if inferred is not None:
            citations = [inferred]
    return citations

