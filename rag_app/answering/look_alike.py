"""Is the answer's figure a look-alike, taken from a passage line about something else?

A small model asked "How much is a joint Plus membership each month?" answered "£20": the joining
fee, from the sentence after the one that says a joint membership costs £78.00 a month. Such an
answer gives a value of the asked kind, is supported by the passage it cites and so passes every
other rule, yet is wrong.

The check: find the lines (sentences with the sentence before them, or table rows with their
header row, each read with its passage's heading path) that hold each of the answer's figures, and
the lines that hold another figure of the same kind (the same unit: money, a percentage,
"minutes", "kg"...). A line fits the question by the question's words it holds, each weighted by
how rare it is among the passages' lines (``log(1 + lines / lines holding it)``: "joining" in one
line of forty says more than "pay" in ten). When some other line fits at least ``margin`` better
than the best line holding the answer's figure, for every figure of the answer, the answer is a
look-alike. Figures the question itself states ("under 8", "for three years") are not the
answer's. English only: Chinese figures are not parsed here.

Chosen on the saved answers of eleven English answer sets (BENCHMARKS.md, "Answer quality"): the
unweighted count of sentences alone without headings (the rule before, margin 2 words) withheld 18
wrong answers of the packaged 0.5B and no right one; weighted with headings at margin 2.5, 21 wrong
and no right one (at 1.5 it withheld a right one). On three sets written after that it withheld 2
right answers, both read off a sentence that names its subject only in the sentence before ("On
its own it costs £38.00"); with that sentence as context, none (fourteen sets: 33 wrong, 0 right).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.loaders.tables import is_separator_line, is_table_line

Tokenize = Callable[[str], list[str]]

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
# £12.50 | 20% | 15 minutes | 15-minute | 3 | four children
_FIGURE = re.compile(
    r"([£$€¥])\s?(\d[\d,]*(?:\.\d+)?)"
    r"|(\d[\d,]*(?:\.\d+)?)(?:\s?(%|per ?cent\b)|[\s-]?([a-z]+))?"
    r"|\b(" + "|".join(_NUMBER_WORDS) + r")\b(?:[\s-]([a-z]+))?",
    re.IGNORECASE,
)
_MARKERS = re.compile(r"[\[【]\s*\d+(?:\s*[-–,，、]\s*\d+)*\s*[\]】]")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


@dataclass(frozen=True)
class Figure:
    unit: str  # "money", "percent", a unit word's token ("minut", "kg"), or "" for a bare number
    number: str  # digits, without thousands separators or a ".00"

    def matches(self, other: Figure) -> bool:
        """The same number, in the same unit or one of the two without a unit."""
        return self.number == other.number and (self.unit == other.unit or not self.unit or not other.unit)


def figures(text: str, tokenize: Tokenize) -> set[Figure]:
    """The figures ``text`` states (citation markers are not figures)."""
    return {figure for _, figure in number_spans(text, tokenize)}


def number_spans(text: str, tokenize: Tokenize) -> list[tuple[tuple[int, int], Figure]]:
    """Each figure ``text`` states, in order, with where its number is written ("12.50" of "£12.50",
    "four" of "four children")."""
    found = []
    masked = _MARKERS.sub(lambda m: " " * len(m.group(0)), text)  # offsets kept
    for m in _FIGURE.finditer(masked):
        if m.group(1):
            found.append((m.span(2), Figure("money", _plain(m.group(2)))))
        elif m.group(3):
            unit = "percent" if m.group(4) else _unit(m.group(5), tokenize)
            found.append((m.span(3), Figure(unit, _plain(m.group(3)))))
        else:
            found.append((m.span(6), Figure(_unit(m.group(7), tokenize), _NUMBER_WORDS[m.group(6).lower()])))
    return found


def _plain(number: str) -> str:
    number = number.replace(",", "").rstrip(".")
    return number[:-3] if number.endswith(".00") else number


def _unit(word: str | None, tokenize: Tokenize) -> str:
    tokens = tokenize(word) if word else []
    return tokens[0] if tokens else ""


def passage_lines(text: str) -> list[tuple[str, str]]:
    """(line, context) pairs of a passage: its sentences, each with the sentence before it in its
    paragraph as context ("Kennel cough vaccine is given as drops up the nose. On its own it costs
    £38.00"), and its table rows with the table's header row (a row "| Gold termly | £95 |" is about
    the columns it sits under)."""
    lines: list[tuple[str, str]] = []
    raw = [line.strip() for line in text.split("\n")]
    header = ""
    for i, line in enumerate(raw):
        if not line:
            header = ""
        elif is_separator_line(line):
            continue
        elif is_table_line(line):
            if i + 1 < len(raw) and is_separator_line(raw[i + 1]):
                header = line
            else:
                lines.append((line, header))
        else:
            header = ""
            sentences = [sentence for sentence in _SENTENCE_END.split(line) if sentence]
            lines.extend(zip(sentences, ["", *sentences[:-1]]))
    return lines


def better_fitting_line(
    question: str, answer: str, passages: Sequence[str | tuple[str, str]], tokenize: Tokenize,
    margin: float = 2.5,
) -> str | None:
    """A passage line that fits the question clearly better than the lines holding the answer's
    figures, and holds another figure of the same kind, when there is one for every figure the
    answer gives; else None (no figure, a figure in no passage, or no clearly better line).
    ``passages``: texts, or (text, heading path) pairs."""
    asked = set(tokenize(question))
    stated = figures(question, tokenize)
    own = [f for f in figures(answer, tokenize) if not any(f.matches(s) for s in stated)]
    if not own:
        return None
    lines = [(line, set(tokenize(f"{line} {context} {heading}")) & asked, figures(line, tokenize))
             for text, heading in map(_with_heading, passages) for line, context in passage_lines(text)]
    holding_lines = Counter(word for _, words, _ in lines for word in words)
    weight = {word: math.log(1 + len(lines) / n) for word, n in holding_lines.items()}

    def fit(words: set[str]) -> float:
        return sum(weight[word] for word in words)

    better = None
    for figure in own:
        holding = [fit(words) for _, words, found in lines if any(figure.matches(f) for f in found)]
        if not holding:
            return None  # not taken from the passages: the support rule's business
        rivals = [
            (fit(words), line) for line, words, found in lines
            if not any(figure.matches(f) for f in found)
            and any(f.unit == figure.unit and not any(f.matches(s) for s in stated) for f in found)
        ] if figure.unit else []
        best = max(rivals, default=None)
        if best is None or best[0] < max(holding) + margin:
            return None
        better = better or best[1]
    return better


def _with_heading(passage: str | tuple[str, str]) -> tuple[str, str]:
    return (passage, "") if isinstance(passage, str) else passage
