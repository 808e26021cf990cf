"""Does the answer give the kind of thing the question asks for?

"How long ...?" asks for a duration, "How much does ... cost?" for an amount of money, "What time
...?" for a time of day. A small model that cannot find the figure often answers with a look-alike
from the passages instead: "How much notice do I have to give?" answered "£24 per hour [2]". Such an
answer cites a passage that holds its words, so the support rule lets it through, yet it cannot be
right. This module reads the kind a question asks for from its wording (only wordings that leave no
doubt) and checks that the answer states something of that kind; questions of any other wording
(who, which, why, what is ...) are never judged.

Deliberately lenient on the answer side: any number with a unit of the kind, a currency amount,
"free", "immediately", a year... counts, right or wrong; it only catches answers that give no value
of the asked kind at all. Measured in BENCHMARKS.md, "Answer quality".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .language import Language

AnswerKind = Literal["duration", "time_of_day", "money", "count", "frequency", "date", "percentage", "data_size",
                     "weight"]

# What the user is told the answer lacked.
KIND_NAMES: dict[AnswerKind, dict[Language, str]] = {
    "duration": {"en": "a length of time", "zh": "时长"},
    "time_of_day": {"en": "a time of day", "zh": "时间"},
    "money": {"en": "an amount of money", "zh": "金额"},
    "count": {"en": "a number", "zh": "数量"},
    "frequency": {"en": "how often", "zh": "频率"},
    "date": {"en": "a day, date or year", "zh": "年份或日期"},
    "percentage": {"en": "a percentage", "zh": "比例"},
    "data_size": {"en": "an amount of data", "zh": "数据量"},
    "weight": {"en": "a weight", "zh": "重量"},
}

_I = re.IGNORECASE
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand"
    r"|million|billion|dozen|single|both"
)
_NUMBER = rf"(?:\d[\d,.]*|{_NUMBER_WORDS})"
# "a week", "an hour", "half an hour", "a few days" are durations too; "per" before the unit is a rate.
_DURATION_AMOUNT = rf"(?:{_NUMBER}|an?|half|several|few|a few|many)"
_TIME_UNITS = (r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|fortnights?|months?|years?"
               r"|yrs?|decades?|terms?|semesters?|quarters?)")
# "How long" also asks for a length ("How long must a password be?").
_LENGTH_UNITS = (r"(?:characters?|letters?|digits?|words?|pages?|lines?|metres?|meters?|cm|mm|km|kilometres?"
                 r"|kilometers?|miles?|feet|foot|ft|inches?|yards?|m)")
_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
           r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_WEEKDAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekday|weekend)s?"
_MONEY = r"[£$€¥]\s?\d|\d\s?(?:p|pence|dollars?|pounds?|euros?|cents?|yuan|usd|gbp|eur|rmb)\b"
# "free" as the price ("it is free", "free of charge"), not a free thing ("a 30-day free trial").
_FREE = (r"(?:^|\b(?:is|are|was|were|be|been|it's|they're|for|completely|entirely|totally|always)\s+)free\b"
         r"|\bfree of charge\b|\bno (?:charge|cost|fee)s?\b|\bnothing\b|\bnot charged\b")
_SHARE = r"%|\bper ?cent\b|\b\d+/\d+\b|\b(?:half|quarter|third|all|none)\b"

_CN_DIGITS = "〇零一二三四五六七八九十百千万亿两"
_ZH_NUMBER = rf"[\d{_CN_DIGITS}]"


@dataclass(frozen=True)
class _Rule:
    kind: AnswerKind
    question: re.Pattern[str]
    answer: re.Pattern[str]


# First matching question wording wins: the more specific kinds come first ("how many days" is a
# duration, "how many" a count).
_EN_RULES = (
    _Rule("frequency", re.compile(r"\bhow (?:often|frequently)\b", _I),
          re.compile(r"\b(?:every|each|per|daily|weekly|monthly|yearly|annually|quarterly|fortnightly|hourly"
                     r"|once|twice|times|always|never|a (?:day|week|month|year))\b", _I)),
    _Rule("time_of_day",
          re.compile(r"(?<!within )(?<!\bin )\bwhat time\b(?! (?:period|frame|limit|zone))"
                     r"|\b(?:opening|closing) (?:times?|hours)\b"
                     r"|\b(?:which|what) hours\b", _I),
          re.compile(r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.)|\b(?:noon|midday|midnight)\b"
                     r"|\b24 hours\b|\b24/7\b|\bclosed\b|\bround the clock\b|\bany time\b", _I)),
    _Rule("date",
          re.compile(r"\b(?:what|which) (?:year|date|days?|months?)\b", _I),
          re.compile(rf"\b\d{{4}}\b|\b{_MONTHS}\b|\b\d{{1,2}}/\d{{1,2}}\b|\b{_WEEKDAYS}\b|\b\d{{1,2}}(?:st|nd|rd|th)\b"
                     r"|\b(?:today|tomorrow|yesterday|every day|daily|each day|any day)\b"
                     r"|\b(?:first|second|third|fourth|last) (?:\w+ )?day\b", _I)),
    _Rule("duration",
          re.compile(rf"\bhow long\b|\bhow much (?:notice|time)\b|\b(?:for )?how many {_TIME_UNITS}\b"
                     r"|\b(?:within|in) what time\b", _I),
          re.compile(rf"\b{_DURATION_AMOUNT}(?:[\s-]+(?!per\b)[a-z]+)?[\s-]+(?:{_TIME_UNITS}|{_LENGTH_UNITS})\b"
                     rf"|\b\d[\d,.]*\s?(?:{_LENGTH_UNITS}|h|hrs?|mins?|s)\b"
                     r"|\b(?:immediately|indefinitely|permanently|forever|overnight|same day|next day|until|no limit"
                     r"|no time limit|unlimited|as long as)\b", _I)),
    # "How much RAM / disk space / mobile data ...?" asks for an amount of data, not money.
    _Rule("data_size",
          re.compile(r"\bhow much (?:\w+ )?(?:memory|ram|storage|data|bandwidth|quota)\b"
                     r"|\bhow much (?:disk|drive|storage|cloud|onedrive|mailbox|email|server) space\b"
                     r"|\b(?:minimum|maximum|max) (?:\w+ )?(?:memory|ram|disk space|storage)\b", _I),
          re.compile(r"\b\d[\d,.]*\s?(?:[kmgtp]i?b|bytes?|kilobytes?|megabytes?|gigabytes?|terabytes?)\b"
                     r"|\bunlimited\b|\bno (?:limit|cap)\b", _I)),
    _Rule("weight",
          re.compile(r"\bweight limit\b|\bhow heavy\b|\b(?:minimum|maximum|max|combined|total) (?:\w+ )?weight\b"
                     r"|\bhow much (?:can|may|could|should|does|do|must) .{0,60}\bweigh\b", _I),
          re.compile(r"\b\d[\d,.]*\s?(?:kg|kgs|kilos?|kilograms?|g|grams?|lbs?|pounds?|stones?|st|tonnes?|tons?)\b"
                     r"|\bno (?:weight )?limit\b|\bunlimited\b", _I)),
    _Rule("money",
          re.compile(r"\bhow much (?:does|do|did|will|would|is|are|was|were|can|could|should|must)\b.{0,80}"
                     r"\b(?:cost|costs|charge|charged|charges|pay|paid|fee|fees|price|fine|fined|deposit|spend"
                     r"|reimburse|reimbursed|refund|refunded|rent|owe)\b"
                     r"|\bhow much (?:money|is the (?:fee|charge|price|fine|deposit|cost|rent))\b"
                     r"|\bwhat (?:does|do|did|will|would) .{1,80}\bcost\b"
                     r"|\bwhat(?:'s| is| are| was) the (?:price|cost|fee|fine|charge|deposit|rent)s?\b", _I),
          # A share of a sum is an amount too ("How much can I overpay each year?" "10% of the balance").
          re.compile(rf"{_MONEY}|{_FREE}|%|\bper ?cent\b", _I)),
    # "How much is a Railcard / is it to park / of the fare ...?" asks for a price or a share of one
    # ("How much is the discount?" -> "a third"); the data and weight wordings were taken above.
    _Rule("money",
          re.compile(r"\bhow much (?:is|are|was|were|will|would) (?:it|a|an|the|one|each|my|your|his|her|their|this"
                     r"|that)\b(?!.*\b(?:allowance|limit|size|distance|speed|capacity|time|notice|leave)\b)"
                     r"|\bhow much of (?:the|my|your|a|an|our) (?:\w+ )?(?:fare|bill|fee|cost|price|deposit|charge"
                     r"|refund|rent|ticket)\b", _I),
          re.compile(rf"{_MONEY}|{_FREE}|{_SHARE}", _I)),
    _Rule("percentage", re.compile(r"\bwhat (?:percent(?:age)?|share|proportion)\b", _I),
          re.compile(_SHARE, _I)),
    _Rule("count",
          re.compile(r"\bhow many\b|\bwhat(?:'s| is) the (?:most|maximum|minimum|fewest|largest number|number)\b", _I),
          re.compile(rf"\b{_NUMBER}\b|\b(?:no|none|unlimited|any number|all)\b", _I)),
)

_ZH_RULES = (
    _Rule("money", re.compile(r"多少钱|(?:价格|费用|价钱|票价|收费|罚款)(?:标准)?(?:是|为)?多少"),
          re.compile(rf"{_ZH_NUMBER}.{{0,4}}(?:元|块|角|美元|欧元|英镑|日元|港元|港币|镑)|[¥$£€]|免费|不收费|无需付费")),
    _Rule("duration",
          re.compile(r"多久|多长时间|(?:多少|几)个?(?:秒|分钟|小时|钟头|天|周|星期|年)(?!代|级)|(?:多少|几)个月"),
          re.compile(rf"{_ZH_NUMBER}.{{0,3}}(?:秒|分|小时|钟头|天|日|周|星期|月|年|世纪|工作日)|永久|长期|当天|当日|立即|马上|随时")),
    _Rule("date", re.compile(r"哪一年|哪年|何年|什么年份|哪个年份"),
          re.compile(rf"{_ZH_NUMBER}+\s*年|年代|世纪|朝|时期|期间|元年")),
    _Rule("count", re.compile(r"多少(?!钱)|(?<!哪)几[个位名人次座条家种所项本部场届只辆架艘层门颗张件]"),
          re.compile(rf"{_ZH_NUMBER}|若干")),
)

# Citation markers carry digits that are not part of the answer.
_MARKERS = re.compile(r"\[\s*\d+(?:\s*[-–,，、]\s*\d+)*\s*\]|【\s*\d+(?:\s*[-–,，、]\s*\d+)*\s*】")


def _rule_for(question: str, language: Language) -> _Rule | None:
    """The first rule whose question wording ``question`` has, if any."""
    return next((r for r in (_ZH_RULES if language == "zh" else _EN_RULES) if r.question.search(question)), None)


def asked_kind(question: str, language: Language) -> AnswerKind | None:
    """The kind of value ``question`` asks for, when its wording says so unambiguously; else None."""
    rule = _rule_for(question, language)
    return rule.kind if rule is not None else None


def missing_kind(question: str, answer: str, language: Language) -> AnswerKind | None:
    """The kind the question asks for when the answer states no value of that kind; else None.

    A value the answer only repeats from the question does not count ("入职满五年的员工每年有几天年假？"
    answered "入职满五年的员工每年有年假" restates; its "五年" is not the answer)."""
    rule = _rule_for(question, language)
    if rule is None:
        return None
    asked = question.casefold()
    values = rule.answer.finditer(_MARKERS.sub(" ", answer))
    return None if any(v.group(0).casefold() not in asked for v in values) else rule.kind
