"""Sentences and the inverse-cloze cut (question making for tuning and calibration)."""
from __future__ import annotations

from ingest.sentences import cut_out, is_cjk_text, question_sized, split_sentences, text_length

EN = "The Team plan has a 30-day free trial. See it.example.com for details! Enterprise adds SSO; it costs more."
ZH = "入职不满五年的正式员工每年享有十二天带薪年假。入职满五年及以上的正式员工每年享有十八天带薪年假。年假须提前申请。"


def test_sentences_split_latin_and_cjk_text() -> None:
    assert split_sentences(EN) == [
        "The Team plan has a 30-day free trial.", "See it.example.com for details!", "Enterprise adds SSO;",
        "it costs more.",
    ]
    assert split_sentences(ZH)[0] == "入职不满五年的正式员工每年享有十二天带薪年假。" and len(split_sentences(ZH)) == 3


def test_length_reads_chinese_in_characters_and_latin_in_words() -> None:
    assert is_cjk_text(ZH) and not is_cjk_text(EN)
    assert text_length("年假须提前申请。") == 8 and text_length("The Team plan has a trial.") == 6


def test_question_sized_skips_stubs_tables_and_numbers() -> None:
    assert question_sized("The Team plan has a 30-day free trial for new customers.")
    assert question_sized("入职满五年及以上的正式员工每年享有十八天带薪年假。")
    assert not question_sized("Pricing.") and not question_sized("年假。")
    assert not question_sized("| 12 | 34 | 56 | 78 | 90 | 11 | 12 |")


def test_cut_out_keeps_the_rest_of_the_text_as_it_was() -> None:
    text = "First sentence here.  Second one.\nThird."
    assert cut_out(text, "Second one.") == "First sentence here.  \nThird."
    assert cut_out(text, "absent") == text
