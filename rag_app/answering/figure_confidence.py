"""How sure was the model of the figure it wrote?

A small model asked for one figure among several look-alikes ("£24" or "£45"?) often writes the
wrong one with a visibly split vote: the digits of a wrong figure come with a low probability, those
of a figure it read off the right line with a probability near 1. The answer's figure confidence is
the lowest probability the model gave any token of the number of any figure the answer states
(figures the question itself states are not the answer's), read from the generation itself, so it
costs nothing extra. None when the answer states no figure or the backend reads no probabilities.

Measured with the packaged 0.5B (BENCHMARKS.md, "Five more unseen English sets"): on eight English
development sets the confidence separates right answers from wrong ones with AUC 0.75; at the cutoff
placed there, 0.42, it withheld 1 of 176 right answers and 10 of 87 wrong ones; on five later sets
3 of 107 right and 10 of 69 wrong.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .look_alike import Tokenize, figures, number_spans

TokenProbs = Sequence[tuple[str, float]]


def figure_confidence(token_probs: TokenProbs, question: str, tokenize: Tokenize) -> float | None:
    """The lowest probability of a token of the answer's own figures' numbers (see the module)."""
    text = "".join(piece for piece, _ in token_probs)
    starts, position = [], 0
    for piece, _ in token_probs:
        starts.append(position)
        position += len(piece)
    stated = figures(question, tokenize)
    lowest: float | None = None
    for (begin, end), figure in number_spans(text, tokenize):
        if any(figure.matches(s) for s in stated):
            continue
        probs = [p for (piece, p), start in zip(token_probs, starts)
                 if start < end and start + len(piece) > begin and _HAS_WORD.search(piece)]
        if probs:
            lowest = min(probs) if lowest is None else min(lowest, *probs)
    return lowest


def written_tokens(token_probs: TokenProbs, written: str) -> list[tuple[str, float]]:
    """The tokens of ``token_probs`` that make up ``written`` (the answer as streamed): those the
    backend generated past a stop string are not the answer's."""
    kept, length = [], 0
    for piece, p in token_probs:
        if length + len(piece) > len(written):
            break
        kept.append((piece, p))
        length += len(piece)
    return kept


_HAS_WORD = re.compile(r"\w")  # a token of the number itself, not the space or "£" before it
