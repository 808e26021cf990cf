"""The BM25 tokenizer's segmentation against jieba itself: the block cache must give exactly the
words ``jieba.lcut`` gives for the whole text (an index built before it must still match queries)."""
from __future__ import annotations

import unicodedata

import jieba
import pytest

from ingest.text_tokenizer import BM25Tokenizer, _segment
from tests.support.paths import SAMPLES

TRICKY = [
    "Lumen Beacon 3.2 requires PostgreSQL 14; uploads ≤ 2 GB (c++ / c# / node.js, 99.9% uptime).",
    "入职满五年的正式员工每年有18天带薪年假，iPhone和Android客户端v2.1.0同步上线。",
    "メールは support@example.com へ。한국어 텍스트도 있습니다。ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３",
    "e-mail_address   tabs\tand\nnewlines\r\n; x86-64 -- a&b #tag 50%off pk ktv cpu",
    "",
    "   ",
    "龟山岛是隶属于英格兰的郡所管辖 the Hobbes war of 1647",
]


def _normalised(text: str) -> str:  # what BM25Tokenizer.tokenize hands to the segmenter
    norm = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in norm)


def _sample_texts() -> list[str]:
    return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(SAMPLES.iterdir())
            if p.suffix in {".md", ".txt", ".html"}]


@pytest.mark.parametrize("text", TRICKY + _sample_texts())
def test_segment_gives_exactly_jiebas_words(text: str) -> None:
    norm = _normalised(text)
    assert _segment(norm) == jieba.lcut(norm, cut_all=False, HMM=True)
    assert _segment(norm) == jieba.lcut(norm, cut_all=False, HMM=True)  # again, from the cache


def test_tokens_of_a_mixed_text() -> None:
    tokens = BM25Tokenizer().tokenize("报销单需要在费用发生后30天内提交 Uploads are limited to 2 GB per file")
    assert {"报销", "费用", "30", "提交", "upload", "limit", "2", "gb", "per", "file"} <= set(tokens)
    assert "的" not in tokens and "are" not in tokens
