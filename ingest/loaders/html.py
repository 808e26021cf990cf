"""HTML loader: BeautifulSoup(lxml) -> heading-scoped Sections, tables as Markdown tables."""
from __future__ import annotations

import logging
import re
import warnings

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from ingest.loaders.detect import LoadError, SectionBuilder, decode_text, detail, no_text_error, stem
from ingest.loaders.tables import markdown_table
from ingest.types import LoadedDocument, sha256_hex

logger = logging.getLogger(__name__)

# Page chrome and non-content; <header> is kept because it often holds the page's <h1>.
_DROP = ("script", "style", "nav", "footer", "noscript", "template", "svg", "canvas", "iframe", "object", "head")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset(
    "p div li ul ol dl dt dd section article main aside header blockquote figure figcaption "
    "address form fieldset legend details summary hr body html center caption".split()
)
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
# <meta charset="gbk"> or <meta http-equiv="Content-Type" content="text/html; charset=gb2312">
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)""", re.I)


def sniff_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in its first 4 KiB, if any (as browsers prescan)."""
    m = _META_CHARSET.search(data[:4096])
    return m.group(1).decode("ascii", "replace") if m else None


def _squash(text: str) -> str:
    return " ".join(text.split())


def _table_text(table: Tag) -> str:
    """The caption (if any) on a line of its own, then the rows as a Markdown table whose header is
    the first row."""
    caption_text = ""
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        caption_text = _squash(caption.get_text(" "))
    rows: list[list[str]] = []
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table:
            continue  # rows of a nested table are rendered inside their cell's text
        rows.append([_squash(cell.get_text(" ")) for cell in tr.find_all(["th", "td"], recursive=False)])
    return "\n".join(part for part in (caption_text, markdown_table(rows)) if part)


class _Walker:
    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self.first_h1 = ""
        self._inline: list[str] = []
        self._prefix = ""
        self._last_was_item = False

    def _flush(self) -> None:
        text = "".join(self._inline)
        self._inline = []
        lines = [_squash(line) for line in text.split("\n")]
        para = "\n".join(line for line in lines if line)
        if para:
            is_item = bool(self._prefix)
            # Consecutive list items stay one block, one per line, like the markdown loader's.
            self.builder.add(self._prefix + para, tight=is_item and self._last_was_item)
            self._last_was_item = is_item
        self._prefix = ""

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, _SKIP_STRINGS):
                    # Source line breaks are just whitespace in HTML; <br> is the real newline.
                    self._inline.append(re.sub(r"\s+", " ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = (child.name or "").lower()
            if name in _HEADINGS:
                self._flush()
                self._last_was_item = False
                text = _squash(child.get_text(" "))
                self.builder.heading(_HEADINGS[name], text)
                if name == "h1" and not self.first_h1:
                    self.first_h1 = text
            elif name == "table":
                self._flush()
                self._last_was_item = False
                self.builder.add(_table_text(child))
            elif name == "pre":
                self._flush()
                self._last_was_item = False
                self.builder.add(child.get_text().strip("\n"))
            elif name == "br":
                self._inline.append("\n")
            elif name in _BLOCKS:
                self._flush()
                if name == "li":
                    self._prefix = "- "
                self.walk(child)
                self._flush()
            else:
                self.walk(child)

    def finish(self) -> None:
        self._flush()


def load_html(data: bytes, name: str) -> LoadedDocument:
    """Headings h1-h6 build ``heading_path``; scripts, styles, nav and footers are dropped."""
    text, encoding = decode_text(data, name, declared=sniff_charset(data))
    walker = _Walker()
    title = ""
    try:
        with warnings.catch_warnings():
            # bs4 warns about markup that "looks like a URL/filename"; irrelevant for files.
            warnings.simplefilter("ignore")
            soup = BeautifulSoup(text, "lxml")
        if soup.title is not None:
            title = _squash(soup.title.get_text(" "))
        for tag in soup.find_all(_DROP):
            tag.decompose()
        walker.walk(soup.body or soup)
        walker.finish()
    except RecursionError as exc:
        raise LoadError("HTML nesting too deep to parse") from exc
    except Exception as exc:  # lxml/bs4 are lenient, but never leak their exception types
        logger.exception("%s: HTML parser failed", name)
        raise LoadError(f"could not parse HTML: {detail(exc)}") from exc
    sections = walker.builder.build()
    if not sections:
        raise no_text_error("the HTML page has no visible text")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="html",
        sections=sections,
        title=title or walker.first_h1 or stem(name),
        encoding=encoding,
    )
