"""A figure read off the wrong line of the passages (pure functions, the project's English tokenizer)."""
from __future__ import annotations

from ingest.text_tokenizer import BM25Tokenizer
from rag_app.answering.look_alike import Figure, better_fitting_line, figures, passage_lines

tokenize = BM25Tokenizer().tokenize

# Two passages as a leisure trust's guide has them (leisure-en: the 0.5B answered a party overrun "£130").
BOOKING = (
    "Parties can be booked up to six months ahead. A non-refundable deposit of £50 secures your date.\n\n"
    "Going over your party room time costs £20 for each extra 15 minutes, as the room is usually booked"
    " for another party straight afterwards."
)
PACKAGES = (
    "| Package | Venue | Maximum children | Monday to Friday | Saturday and Sunday |\n"
    "| --- | --- | --- | --- | --- |\n"
    "| Dance Party | Foxley Park Fitness Studio | 15 | £130 | £150 |\n"
    "| Splash Party | Greywell Community Pool | 20 | £165 | £185 |\n\n"
    "Prices are for the whole party and do not include food."
)
MEMBERSHIPS = (
    "Students can spread the cost of Gold membership over 10 monthly payments of £22.\n\n"
    "| Membership | Student | Staff |\n| --- | --- | --- |\n"
    "| Gold annual | £210 | £320 |\n| Gold termly | £95 | £140 |\n\n"
    "Sports scholarships are worth up to £3,000 a year, with free Gold membership for the student."
)


def test_figures_are_read_with_their_unit() -> None:
    assert figures("It costs £1,905.00 [2].", tokenize) == {Figure("money", "1905")}
    assert figures("a free 15-minute assessment", tokenize) == {Figure("minut", "15")}
    assert figures("up to four children, or 50% of the balance", tokenize) == {
        Figure("children", "4"), Figure("percent", "50")}
    assert Figure("", "4").matches(Figure("children", "4")) and not Figure("money", "4").matches(Figure("kg", "4"))


def test_table_rows_are_lines_with_their_header_as_context() -> None:
    lines = passage_lines(PACKAGES)
    assert lines[0] == ("| Dance Party | Foxley Park Fitness Studio | 15 | £130 | £150 |",
                        "| Package | Venue | Maximum children | Monday to Friday | Saturday and Sunday |")
    assert lines[-1] == ("Prices are for the whole party and do not include food.", "")


def test_a_figure_from_a_line_about_something_else_is_a_look_alike() -> None:
    question = "How much does it cost if we go over our party room time?"
    better = better_fitting_line(question, "Going over the party room time costs £130. [2]", [BOOKING, PACKAGES],
                                 tokenize)
    assert better is not None and better.startswith("Going over your party room time costs £20")
    # The right figure is never judged a look-alike, nor a figure the passages do not hold.
    assert better_fitting_line(question, "It costs £20 for each extra 15 minutes. [1]", [BOOKING, PACKAGES],
                               tokenize) is None
    assert better_fitting_line(question, "It costs £25. [1]", [BOOKING, PACKAGES], tokenize) is None
    assert better_fitting_line(question, "Please ask reception. [1]", [BOOKING, PACKAGES], tokenize) is None
    # A clearer margin asked for: the same answer stands.
    assert better_fitting_line(question, "Going over the party room time costs £130. [2]",
                               [BOOKING, PACKAGES], tokenize, margin=9) is None


def test_a_table_row_is_judged_with_its_columns() -> None:
    # "| Gold termly | £95 |" alone shares only "gold" and "termly" with the question; under its header
    # ("Membership", "Student") it fits as well as any other line, so the right answer stands.
    question = "How much is a termly Gold membership at the sports centre for a student?"
    assert better_fitting_line(question, "A termly Gold membership costs £95. [2]", [MEMBERSHIPS], tokenize) is None


def test_figures_the_question_states_are_not_the_answers() -> None:
    passage = ("Children under 8 must be supervised in the water by an adult, one adult for every four"
               " children.\n\nAt the Splash Party, children under 12 swim with a lifeguard, 12 children each.")
    question = "At a pool party, how many children under 8 can each adult in the water look after?"
    # Its only figure is the question's own "8": nothing of the answer's to judge.
    assert better_fitting_line(question, "Children under 8 must be supervised by an adult. [1]", [passage],
                               tokenize) is None
    # "12 children" sits in the line about another party, and the first line fits the question better.
    assert better_fitting_line(question, "Each adult looks after 12 children. [1]", [passage],
                               tokenize) == passage.split("\n\n")[0]
