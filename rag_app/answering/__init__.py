"""Cited answers: language detection, prompts that quote sources as data, and the streaming answerer."""
from __future__ import annotations

from .answerer import Answerer
from .citations import Citation, infer_citation, map_citations, parse_citation_numbers
from .events import AnswerEvent, DeltaEvent, ErrorEvent, FinalEvent, QueryEvent, SourcesEvent
from .language import detect_language
from .prompt import NumberedSource, Prompt, build_prompt, fit_sources, format_source
from .question import BoundedQuestion, clean_question, normalise_history

__all__ = [
    "AnswerEvent",
    "Answerer",
    "BoundedQuestion",
    "Citation",
    "DeltaEvent",
    "ErrorEvent",
    "FinalEvent",
    "NumberedSource",
    "Prompt",
    "QueryEvent",
    "SourcesEvent",
    "build_prompt",
    "clean_question",
    "detect_language",
    "fit_sources",
    "format_source",
    "infer_citation",
    "map_citations",
    "normalise_history",
    "parse_citation_numbers",
]
