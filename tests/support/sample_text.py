"""Paragraphs and questions of the shipped samples, for comparing embedder runtimes."""
from __future__ import annotations

from tests.support.paths import SAMPLES

SAMPLE_QUESTIONS = [
    "入职满五年的正式员工每年有几天带薪年假？",
    "报销单需要在费用发生后多少天内提交？",
    "What is the maximum upload size per file in Lumen Beacon 3.2?",
    "How long must passwords be according to the security policy?",
]


def sample_paragraphs() -> list[str]:
    """The longer paragraphs of three samples (Chinese Markdown, English Markdown and HTML)."""
    texts = []
    for name in ("employee_handbook_zh.md", "product_faq_en.md", "security_policy_en.html"):
        raw = (SAMPLES / name).read_text(encoding="utf-8")
        texts += [p.strip() for p in raw.split("\n\n") if len(p.strip()) > 20]
    return texts
