"""Citations: the ``[n]`` markers of an answer resolved to the sources quoted under those numbers,
or, when the model cited nothing, the one source that clearly supports the answer."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .prompt import NumberedSource

# [1]  [1, 2]  [1,2]  [1-3]  【1】  【1，2】  [1、2]: one bracket holding numbers, lists or ranges.
_CITATION_RE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*(?:[,，、;；]|[-–~])\s*\d{1,3})*)\s*[\]】]")
_NUM_SPLIT_RE = re.compile(r"\s*[,，、;；]\s*")
_RANGE_RE = re.compile(r"^(\d+)\s*[-–~]\s*(\d+)$")
_MAX_RANGE = 20  # "[1-999]" is not a citation
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
# An answer saying the documents don't cover it must not get a citation pinned on it.
_DONT_KNOW_RE = re.compile(
    r"don['’]t know|do not know|not (?:mention|say|contain|provide|specif)|no information|cannot answer|"
    r"不知道|没有相关|未提及|没有提到|没有提供|无法回答|不清楚",
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


def infer_citation(
    answer: str,
    sources: Sequence[NumberedSource],
    tokenize: Callable[[str], list[str]],
    min_support: float,
) -> Citation | None:
    """The source that supports an uncited answer, or None when none clearly does.

    Support = the share of the answer's distinct terms (the BM25 tokenizer's: jieba words, stemmed
    English, stopwords dropped) that occur in the source; every number in the answer must also occur
    in it (a hallucinated figure must not look supported). Ties go to the better-ranked source.
    """
    if not answer.strip() or _DONT_KNOW_RE.search(answer):
        return None
    terms = set(tokenize(answer))
    if len(terms) < 2:
        return None
    numbers = set(_NUMBER_RE.findall(answer))
    best: tuple[float, NumberedSource] | None = None
    for s in sources:
        if any(n not in s.chunk.text for n in numbers):
            continue
        support = len(terms & set(tokenize(s.chunk.text))) / len(terms)
        if support >= min_support and (best is None or support > best[0]):
            best = (support, s)
    return Citation(best[1].number, best[1], inferred=True) if best else None
