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
    # "12 children" sits in the line about another party, and the first line fits the question better
    # (in two lines a word weighs at most log 3, so a smaller margin than a real passage's).
    assert better_fitting_line(question, "Each adult looks after 12 children. [1]", [passage],
                               tokenize, margin=1) == passage.split("\n\n")[0]


def test_a_line_is_read_with_its_passages_heading_path() -> None:
    # "A joining fee of £10 applies." says nothing of Bracken Swim or paying monthly; the heading it sits
    # under does. Without it the gym's line would fit the question clearly better.
    question = "What's the joining fee for Bracken Swim if I pay monthly?"
    swim = "A joining fee of £10 applies. Lessons run in blocks of ten weeks."
    gym = ("Gym members who pay monthly pay a joining fee of £25 on top of the first month.\n\n"
           "The gym is open from 6am.")
    answer = "The joining fee is £10. [1]"
    assert better_fitting_line(question, answer, [swim, gym], tokenize) == gym.split("\n\n")[0]
    assert better_fitting_line(question, answer, [(swim, "Bracken Swim > Paying monthly"),
                                                  (gym, "Gym memberships")], tokenize) is None


def test_rare_question_words_weigh_more_than_common_ones() -> None:
    # The locker line holds one of the question's words, the gym and class lines two each. But
    # "members" and "pay" are in three lines of the four and "locker" in one: weighted by rarity the
    # lines fit about equally, so the right answer stands (counted, the gym line led by a word).
    passages = ["Members pay £30 a month for the gym.", "Members pay £12 a month for classes.",
                "Members who pay monthly park for free.", "Lockers are £2 a day."]
    question = "How much do members pay for a locker?"
    assert better_fitting_line(question, "A locker is £2 a day. [4]", passages, tokenize, margin=0.5) is None
    assert better_fitting_line(question, "A locker is £30. [1]", passages, tokenize, margin=0.5) is None
    # A rarer word beside them tips it: "gym" is in one line, so the gym line now fits clearly better.
    question = "How much do members pay for the gym?"
    assert better_fitting_line(question, "It is £12 a month. [2]", passages, tokenize, margin=1) == passages[0]


def test_a_sentence_is_read_with_the_one_before_it() -> None:
    # vet-en: "On its own it costs £38.00" names the vaccine only in the sentence before; read alone,
    # the booster table's row would fit the question clearly better and the right answer be withheld.
    dogs = ("Kennel cough vaccine is given as drops up the nose. On its own it costs £38.00; given at the same"
            " visit as the annual booster it is £29.00. Most kennels ask for it 14 days before a stay.")
    table = ("| Vaccination | Dogs | Cats |\n| --- | --- | --- |\n| Annual booster | £64.00 | £58.00 |\n"
             "| Extra component added to a booster | £29.00 (kennel cough) | £11.00 (FeLV) |")
    assert passage_lines(dogs)[1][1] == "Kennel cough vaccine is given as drops up the nose."
    question = "My dog's booster isn't due for months. How much is just the kennel cough vaccine by itself?"
    passages = [(dogs, "Prices > Vaccinations > Dogs"), (table, "Prices > Vaccinations")]
    assert better_fitting_line(question, "The kennel cough vaccine by itself costs £38.00. [1]", passages,
                               tokenize) is None
