"""Cited answers: language detection, prompts that quote sources as data, and the streaming answerer."""
from __future__ import annotations

from .answerer import (
    AnswerEvent,
    Answerer,
    Citation,
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    QueryEvent,
    SourcesEvent,
    infer_citation,
    map_citations,
    normalise_history,
    parse_citation_numbers,
)
from .language import detect_language
from .prompt import NumberedSource, Prompt, build_prompt, fit_sources, format_source

__all__ = [
    "AnswerEvent",
    "Answerer",
    "Citation",
    "DeltaEvent",
    "ErrorEvent",
    "FinalEvent",
    "NumberedSource",
    "Prompt",
    "QueryEvent",
    "SourcesEvent",
    "build_prompt",
    "detect_language",
    "fit_sources",
    "format_source",
    "infer_citation",
    "map_citations",
    "normalise_history",
    "parse_citation_numbers",
]
