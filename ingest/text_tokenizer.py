"""Keyword tokenizer for the BM25 index: mixed Chinese / English text -> index terms.

Pipeline per text: NFKC (full-width latin, digits and punctuation become half-width) ->
lower-case -> jieba precise mode (HMM on; latin runs come out as whole words) -> keep tokens
with at least one letter / digit / CJK character -> drop stopwords -> Porter2-stem latin words.

The same tokenizer must be used for documents and queries, otherwise terms will not match.
"""
from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Iterable
from types import ModuleType

logger = logging.getLogger(__name__)

# Small, conservative lists: only words that carry no topic on their own. Compared against the
# lower-cased surface form (before stemming) so the list stays readable.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves s t don shall may might
    must also
    """.split()
)

CHINESE_STOPWORDS: frozenset[str] = frozenset(
    """
    的 了 是 在 和 与 及 或 也 就 都 而 之 吗 呢 吧 啊 呀 嘛 哦 么 着 过 地 得 把 被 让 给 对 从 向
    于 以 为 因 由 但 却 并 又 还 即 则 且 若 如 所 其 该 此 这 那 这个 那个 这些 那些 这样 那样
    我 你 他 她 它 我们 你们 他们 她们 它们 您 有 没有 什么 怎么 怎样 如何 哪些 哪个 哪里 为什么
    请问 请 一下 可以 能 会 要 需要 是否 是不是 以及 或者 而且 并且 因为 所以 如果 虽然 但是 然后
    一个 一些 等 等等 啦 哈 呗 诶
    """.split()
)

# Module-level lazy state: jieba builds its prefix dictionary (about a second) on first use, so
# import stays cheap and concurrent first calls build it once.
_jieba_lock = threading.Lock()
_jieba: ModuleType | None = None
_stemmers = threading.local()  # PyStemmer objects keep internal state: one per thread


def _get_jieba() -> ModuleType:
    global _jieba
    if _jieba is not None:
        return _jieba
    with _jieba_lock:
        if _jieba is None:
            with warnings.catch_warnings():
                # jieba 0.42 imports pkg_resources, which warns on recent setuptools.
                warnings.simplefilter("ignore")
                import jieba
            # jieba logs "Building prefix dict ..." at DEBUG to stderr via its own handler.
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba
    return _jieba


# The ideograph range of jieba's block pattern (re_han_default).
_IDEOGRAPH = re.compile("[\u4e00-\u9fd5]")


def _segment(text: str) -> list[str]:
    """``jieba.lcut(text, cut_all=False, HMM=True)``, the same words, faster on latin text.

    jieba splits a text into blocks (runs of CJK ideographs, latin letters, digits and ``+#&._%-``,
    and the runs between them) and segments each block on its own, so the words of a text are the
    concatenation of its blocks' words. A block without an ideograph ("protein", "3.2", ", ") recurs
    across chunks: its words come from a cache. Blocks with ideographs are segmented as they come."""
    jieba = _get_jieba()
    words: list[str] = []
    for block in jieba.re_han_default.split(text):
        if not block:
            continue
        if _IDEOGRAPH.search(block):
            words.extend(jieba.lcut(block, cut_all=False, HMM=True))
        else:
            words.extend(_segment_without_ideographs(block))
    return words


@functools.lru_cache(maxsize=200_000)
def _segment_without_ideographs(block: str) -> tuple[str, ...]:
    return tuple(_get_jieba().lcut(block, cut_all=False, HMM=True))


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    # lru_cache is thread-safe; the stemmer itself is not, hence the thread-local instance.
    stemmer = getattr(_stemmers, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = Stemmer.Stemmer("english", 0)  # our lru_cache replaces its per-object cache
        _stemmers.stemmer = stemmer
    return stemmer.stemWord(word)


def is_cjk_char(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x20000 <= cp <= 0x3134F  # extensions B-G
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= cp <= 0x30FF  # kana
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
    )


def _has_word_char(tok: str) -> bool:
    # str.isalnum covers latin, digits and CJK ideographs (category Lo); CJK check is a safety net.
    return any(ch.isalnum() or is_cjk_char(ch) for ch in tok)


class BM25Tokenizer:
    """Deterministic, thread-safe tokenizer for mixed Chinese/English keyword search."""

    def __init__(self, stem_english: bool = True, stopwords: bool = True) -> None:
        self.stem_english = stem_english
        self.stopwords = stopwords
        self._stop: frozenset[str] = (
            ENGLISH_STOPWORDS | CHINESE_STOPWORDS if stopwords else frozenset()
        )

    def tokenize(self, text: str) -> list[str]:
        if not text:
            return []
        if not isinstance(text, str):  # be forgiving with bytes / other objects from loaders
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        # NFKC first so full-width "ＡＢＣ１２３，" matches "abc123,"; lower() after NFKC because
        # NFKC can produce upper-case letters (e.g. from circled or full-width forms).
        norm = unicodedata.normalize("NFKC", text).lower()
        # NUL and other controls are harmless to jieba but never part of a word: blank them.
        norm = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in norm)
        stop = self._stop
        out: list[str] = []
        for tok in _segment(norm):
            tok = tok.strip()
            if not tok or not _has_word_char(tok) or tok in stop:
                continue
            if self.stem_english and not any(is_cjk_char(ch) for ch in tok) and any(
                ch.isalpha() for ch in tok
            ):
                tok = _stem(tok)
                if not tok:  # defensive: never emit empty terms
                    continue
            out.append(tok)
        return out

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokenize(t) for t in texts]

    def __repr__(self) -> str:
        return f"BM25Tokenizer(stem_english={self.stem_english}, stopwords={self.stopwords})"
