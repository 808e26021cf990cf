"""Markdown loader: markdown-it-py tokens -> heading-scoped Sections of plain text."""
from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ingest.loaders.detect import LoadError, SectionBuilder, decode_text, detail, no_text_error, stem
from ingest.loaders.tables import markdown_table
from ingest.types import LoadedDocument, sha256_hex

logger = logging.getLogger(__name__)

# YAML (---) or TOML (+++) front matter at the very top; metadata, not content.
_FRONT_MATTER = re.compile(r"\A(?:---|\+\+\+)[ \t]*\n(.*?\n)??(?:---|\.\.\.|\+\+\+)[ \t]*(?:\n|\Z)", re.S)
_META_LINE = re.compile(r"\s*$|\s*[\w.\"'-]+\s*[:=]|\s*-\s|\s*#|[ \t]")


def _parser() -> MarkdownIt:
    # CommonMark + GFM tables/strikethrough; raw HTML stays in the token stream as html_* tokens.
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _strip_front_matter(text: str) -> str:
    m = _FRONT_MATTER.match(text)
    if not m:
        return text
    # Only YAML/TOML-looking blocks: a leading '---' followed by prose is a thematic break.
    inner = (m.group(1) or "").splitlines()
    if all(_META_LINE.match(line) for line in inner):
        return text[m.end():]
    return text


def _strip_html(fragment: str) -> str:
    """Text of a raw-HTML fragment: tags, comments, scripts and styles removed.

    A linear scan rather than regexes: a lazy ``<!--.*?-->`` is quadratic on input with many
    unclosed openers, which a hostile upload can exploit.
    """
    out: list[str] = []
    lower = fragment.lower()
    i, n = 0, len(fragment)
    while i < n:
        j = fragment.find("<", i)
        if j < 0:
            out.append(fragment[i:])
            break
        out.append(fragment[i:j])
        if fragment.startswith("<!--", j):
            end = fragment.find("-->", j + 4)
            i = n if end < 0 else end + 3
        elif lower.startswith(("<script", "<style"), j):
            closing = "</script" if lower.startswith("<script", j) else "</style"
            end = lower.find(closing, j)
            close = fragment.find(">", end) if end >= 0 else -1
            i = n if close < 0 else close + 1
        else:
            end = fragment.find(">", j)
            if end < 0:  # a lone '<' is text, not a tag
                out.append(fragment[j:])
                break
            out.append(" ")
            i = end + 1
    return re.sub(r"[ \t]+", " ", html.unescape("".join(out))).strip()


def _inline_text(tok: Token) -> str:
    """Plain text of an inline token: markup dropped, link text and image alt text kept."""
    parts: list[str] = []
    for child in tok.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)  # the alt text
        elif child.type == "html_inline":
            parts.append(_strip_html(child.content))
    return "".join(parts).strip()


class _Walker:
    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self.title = ""
        self._lists: list[list[int | None]] = []  # per open list: [next number] (None = bullet)
        self._marker: str | None = None  # marker for the first block of the current list item
        self._list_lines: list[str] = []
        self._table: list[list[str]] | None = None
        self._row: list[str] = []

    def _emit(self, text: str) -> None:
        if not text.strip():
            return
        if self._lists:
            indent = "  " * (len(self._lists) - 1)
            prefix, self._marker = self._marker, None
            lines = text.split("\n")
            first = indent + (prefix or "  ") + lines[0]
            self._list_lines.append("\n".join([first] + [indent + "  " + ln for ln in lines[1:]]))
        else:
            self.builder.add(text)

    def walk(self, tokens: Sequence[Token]) -> None:
        for i, tok in enumerate(tokens):
            t = tok.type
            if t == "heading_open":
                text = _inline_text(tokens[i + 1]) if i + 1 < len(tokens) else ""
                level = int(tok.tag[1:]) if tok.tag[1:].isdigit() else 1
                self._flush_list()
                self.builder.heading(level, text)
                if level == 1 and not self.title:
                    self.title = " ".join(text.split())
            elif t == "inline":
                prev = tokens[i - 1].type if i else ""
                if prev == "paragraph_open":
                    self._emit(_inline_text(tok))
                elif prev in ("th_open", "td_open"):
                    self._row.append(" ".join(_inline_text(tok).split()))
            elif t in ("bullet_list_open", "ordered_list_open"):
                number: int | None = None
                if t == "ordered_list_open":
                    start = str(tok.attrGet("start") or "1")  # absent when the list starts at 1
                    number = int(start) if start.isdigit() else 1
                self._lists.append([number])
            elif t in ("bullet_list_close", "ordered_list_close"):
                if self._lists:
                    self._lists.pop()
                if not self._lists:
                    self._flush_list()
            elif t == "list_item_open" and self._lists:
                counter = self._lists[-1]
                if counter[0] is None:
                    self._marker = "- "
                else:
                    self._marker = f"{counter[0]}. "
                    counter[0] += 1
            elif t in ("fence", "code_block"):
                self._emit(tok.content.rstrip("\n"))
            elif t == "html_block":
                self._emit(_strip_html(tok.content))
            elif t == "table_open":
                self._table = []
            elif t == "tr_open":
                self._row = []
            elif t == "tr_close" and self._table is not None:
                self._table.append(self._row)
            elif t == "table_close" and self._table is not None:
                self._emit(markdown_table(self._table))
                self._table = None

    def _flush_list(self) -> None:
        if self._list_lines:
            self.builder.add("\n".join(self._list_lines))
            self._list_lines = []


def load_markdown(data: bytes, name: str) -> LoadedDocument:
    """Each heading starts a Section whose ``heading_path`` is the H1 > H2 > ... stack above it."""
    text, encoding = decode_text(data, name)
    text = _strip_front_matter(text)
    walker = _Walker()
    try:
        walker.walk(_parser().parse(text))
    except RecursionError as exc:
        raise LoadError("markdown nesting too deep to parse") from exc
    except Exception as exc:  # markdown-it should not fail on any str, but never leak its errors
        logger.exception("%s: markdown parser failed", name)
        raise LoadError(f"could not parse markdown: {detail(exc)}") from exc
    sections = walker.builder.build()
    if not sections:
        raise no_text_error("the markdown has no text")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="markdown",
        sections=sections,
        title=walker.title or stem(name),
        encoding=encoding,
    )
