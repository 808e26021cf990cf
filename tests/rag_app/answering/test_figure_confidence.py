"""How sure the model was of its figure (pure functions, the project's English tokenizer)."""
from __future__ import annotations

from ingest.text_tokenizer import BM25Tokenizer
from rag_app.answering.figure_confidence import figure_confidence, written_tokens

tokenize = BM25Tokenizer().tokenize

# The packaged 0.5B's tokens write a number digit by digit: "£", "2", "4".
SPLIT_VOTE = [("The", 0.9), (" fee", 0.9), (" is", 0.99), (" £", 0.95), ("2", 0.41), ("4", 0.9), (".", 0.99),
              (" [", 0.9), ("1", 0.3), ("]", 0.99)]


def test_the_lowest_probability_of_the_figures_number_tokens() -> None:
    # The "£" before it, the words around it and the citation marker's "1" are not the figure.
    assert figure_confidence(SPLIT_VOTE, "What's the fee to change my flight?", tokenize) == 0.41
    several = [("It", 0.9), (" is", 0.9), (" £", 0.9), ("5", 0.97), (" or", 0.2), (" 12", 0.6), ("%", 0.99)]
    assert figure_confidence(several, "How much?", tokenize) == 0.6
    assert figure_confidence([("It", 0.9), (" takes", 0.5), (" four", 0.7), (" days", 0.3)], "How long?",
                             tokenize) == 0.7


def test_none_without_a_figure_of_the_answers_own() -> None:
    assert figure_confidence([("Ask", 0.2), (" reception", 0.3), (".", 0.9)], "Where?", tokenize) is None
    assert figure_confidence([], "What's the fee?", tokenize) is None  # a backend that reads no probabilities
    # The question's own figure repeated ("Is it £24?") is not the answer's.
    assert figure_confidence(SPLIT_VOTE, "Is the fee £24?", tokenize) is None


def test_tokens_past_what_was_streamed_are_not_the_answers() -> None:
    # A stop string cut the stream after "£5."; the backend had generated "Source 3" beyond it.
    probs = [("It", 0.9), (" costs", 0.9), (" £", 0.9), ("5", 0.95), (".", 0.9), ("\n\nSource", 0.5), (" 3", 0.1)]
    kept = written_tokens(probs, "It costs £5.")
    assert kept == probs[:5]
    assert figure_confidence(kept, "How much?", tokenize) == 0.95
