"""The chunker sizes chunks with the embedder's own tokenizer and never exceeds the model limit."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker
from ingest.embedding import Embedder
from ingest.settings import ChunkerSettings, EmbedderSettings
from ingest.types import HEADING_INDEX_CHARS, LoadedDocument, Section, indexed_text, sha256_hex

ZH_SENTENCES = [
    "员工每年享有十五天带薪年假。",
    "报销需要在三十天内提交发票，并由直属经理审批！",
    "会议室预订请使用内部系统；紧急情况请联系行政部。",
    "请问，年假可以跨年使用吗？",
    "公司位于杭州市西湖区，成立于二〇一九年。",
]
EN_SENTENCES = [
    "Employees receive fifteen days of paid leave each year.",
    "Expense reports must be filed within thirty days, with receipts attached.",
    "The VPN client is mandatory on public networks; see the security policy.",
    "What happens if a laptop is lost? Report it to IT within one hour!",
]


@pytest.fixture(scope="module")
def small_limit_embedder(e5_model_dir: Path) -> Embedder:
    """The real e5 tokenizer with a 64-token model limit, to stress the limit with short text."""
    return Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), max_tokens=64))


def _doc(text: str, **section: object) -> LoadedDocument:
    return LoadedDocument(
        source="doc.md", doc_id=sha256_hex(text), file_type="markdown", sections=(Section(text=text, **section),)
    )


def test_chunks_respect_target_and_split_at_sentence_ends(e5_embedder: Embedder) -> None:
    text = "\n\n".join(" ".join(EN_SENTENCES) + "".join(ZH_SENTENCES) for _ in range(6))
    chunker = Chunker(ChunkerSettings(target_tokens=60, overlap_tokens=10), e5_embedder)
    chunks = chunker.chunk(_doc(text))
    assert len(chunks) > 3
    for c in chunks:
        assert c.token_count == e5_embedder.count_tokens([c.text])[0]
        # The target bounds text tokens; prefix and special tokens come on top.
        assert c.token_count <= 60 + chunker.overhead
        assert c.text[-1] in "。！？；.!?", c.text  # ends at a sentence boundary
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_overlap_repeats_trailing_sentences(e5_embedder: Embedder) -> None:
    text = " ".join(EN_SENTENCES * 4)
    chunks = Chunker(ChunkerSettings(target_tokens=50, overlap_tokens=20), e5_embedder).split_text(text)
    assert len(chunks) >= 3
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = re.split(r"(?<=[.!?])\s+", prev)[-1]
        assert last_sentence in nxt


def test_sentence_longer_than_the_limit_is_cut_at_token_boundaries(small_limit_embedder: Embedder) -> None:
    long_sentence = "数据" * 300 + "。" + "word " * 200
    chunker = Chunker(ChunkerSettings(target_tokens=40, overlap_tokens=0), small_limit_embedder)
    chunks = chunker.split_text(long_sentence)
    assert len(chunks) > 5
    counts = small_limit_embedder.count_tokens(chunks)
    assert max(counts) <= 64
    # Nothing lost: the pieces put back together hold every character except whitespace.
    assert "".join(chunks).replace(" ", "") == long_sentence.replace(" ", "")


def test_metadata_and_ids_are_deterministic(e5_embedder: Embedder) -> None:
    doc = LoadedDocument(
        source="guide.pdf",
        doc_id="d" * 64,
        file_type="pdf",
        sections=(
            Section(text=" ".join(EN_SENTENCES), page=1),
            Section(text="".join(ZH_SENTENCES), page=2, heading_path=("手册", "假期")),
        ),
    )
    chunker = Chunker(ChunkerSettings(), e5_embedder)
    first, second = chunker.chunk(doc), chunker.chunk(doc)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert len({c.chunk_id for c in first}) == len(first)
    assert first[0].page == 1 and first[-1].page == 2
    assert first[-1].section == "手册 > 假期"
    assert all(c.source == "guide.pdf" and c.doc_id == doc.doc_id for c in first)


def test_empty_and_whitespace_sections_give_no_chunks(e5_embedder: Embedder) -> None:
    chunker = Chunker(ChunkerSettings(), e5_embedder)
    assert chunker.split_text("") == []
    assert chunker.split_text(" \n\n\t \u3000 ") == []


_pieces = st.one_of(
    st.sampled_from(ZH_SENTENCES + EN_SENTENCES),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=300),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=300),
    st.sampled_from(["。", "！", "？", "；", ". ", "\n", "\n\n", "，", "、", "“", "”", "（", "）", " 2026 ", "😀"]),
    st.text(min_size=1, max_size=40),  # anything at all, control characters included
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_pieces, min_size=1, max_size=40), target=st.integers(10, 80), overlap=st.integers(0, 30))
def test_property_no_chunk_exceeds_the_model_limit(
    small_limit_embedder: Embedder, parts: list[str], target: int, overlap: int
) -> None:
    """Random mixed Chinese/English text: every chunk fits the model (64 tokens here) as the
    embedder will see it, prefix and special tokens included."""
    text = "".join(parts)
    chunker = Chunker(ChunkerSettings(target_tokens=target, overlap_tokens=overlap), small_limit_embedder)
    chunks = chunker.chunk(_doc(text))
    counts = small_limit_embedder.count_tokens([c.text for c in chunks])
    assert all(n <= small_limit_embedder.max_tokens for n in counts)
    assert [c.token_count for c in chunks] == counts
    # Every non-space character of the input survives in some chunk.
    covered = "".join(c.text for c in chunks)
    for ch in set(text) - set(" \t\n\r\u3000\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"):
        if ch.strip():
            assert ch in covered


def _price_table(rows: int) -> str:
    lines = ["| 产品 | 型号 | 单价 (元) | Notes |", "| --- | --- | --- | --- |"]
    lines += [f"| 产品{i} | X-{i:03d} | {1000 + i * 7} | Ships in {i % 5 + 1} days. Fragile. |" for i in range(rows)]
    return "\n".join(lines)


def test_a_table_split_across_chunks_repeats_its_header_and_keeps_rows_whole(e5_embedder: Embedder) -> None:
    table = _price_table(40)
    text = "价格表说明：以下价格含税。\n\n" + table + "\n\n表后的说明文字。End of list."
    chunks = Chunker(ChunkerSettings(target_tokens=80, overlap_tokens=20), e5_embedder).split_text(text)
    table_chunks = [c for c in chunks if "| X-" in c]
    assert len(table_chunks) > 3
    rows = table.split("\n")[2:]
    seen: list[str] = []
    for chunk in table_chunks:
        lines = chunk.split("\n")
        start = lines.index("| 产品 | 型号 | 单价 (元) | Notes |")  # every table chunk carries the header
        assert lines[start + 1] == "| --- | --- | --- | --- |"
        body = [line for line in lines[start + 2 :] if line.startswith("|")]
        assert all(line in rows for line in body)  # whole rows only ("Ships in 2 days. Fragile." not cut)
        seen += body
    assert seen == rows  # every row once, in order: rows are not repeated as overlap
    assert chunks[0].startswith("价格表说明")
    assert "表后的说明文字" in chunks[-1]


def test_spreadsheet_chunks_name_the_rows_they_hold(e5_embedder: Embedder) -> None:
    table = _price_table(30)
    numbers = tuple(range(3, 33))  # the sheet's data rows start at row 3
    doc = _doc(table, heading_path=("价格",), row_numbers=numbers)
    # A row is ~27 tokens and the header ~37: several rows per chunk.
    chunks = Chunker(ChunkerSettings(target_tokens=160, overlap_tokens=20), e5_embedder).chunk(doc)
    assert len(chunks) > 2
    covered: list[int] = []
    for chunk in chunks:
        match = re.fullmatch(r"价格 > rows (\d+)-(\d+)", chunk.section)
        assert match, chunk.section
        first, last = int(match.group(1)), int(match.group(2))
        assert f"| 产品{first - 3} |" in chunk.text and f"| 产品{last - 3} |" in chunk.text
        covered += range(first, last + 1)
    assert covered == list(numbers)


def test_a_small_table_stays_with_its_text(e5_embedder: Embedder) -> None:
    text = "Opening hours are below.\n\n| Day | Hours |\n| --- | --- |\n| Mon | 9-17 |\n| Sat | 10-14 |"
    assert Chunker(ChunkerSettings(), e5_embedder).split_text(text) == [text]


def test_the_heading_path_is_indexed_with_the_text_and_counted_in_the_limit(small_limit_embedder: Embedder) -> None:
    # Under a long heading the text gets less room: the embedder's input (heading, then text) still fits.
    heading = ("Pricing and Plans", "How much does the Team plan cost per user and per month, billed annually?")
    text = " ".join(EN_SENTENCES * 3)
    chunker = Chunker(ChunkerSettings(target_tokens=40, overlap_tokens=0), small_limit_embedder)
    chunks = chunker.chunk(_doc(text, heading_path=heading))
    assert chunks and all(c.section == " > ".join(heading) for c in chunks)
    counts = small_limit_embedder.count_tokens([c.indexed_text for c in chunks])
    assert counts == [c.token_count for c in chunks]
    assert all(n <= small_limit_embedder.max_tokens for n in counts)
    assert all(c.indexed_text == f"{c.section}\n{c.text}" for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")  # nothing lost


def test_indexed_text_leaves_out_row_labels_and_keeps_the_specific_end_of_a_long_path() -> None:
    assert indexed_text("a b", "") == "a b"
    assert indexed_text("a b", "Prices > Team") == "Prices > Team\na b"
    assert indexed_text("| x | 1 |", "Sheet1 > rows 2-40") == "Sheet1\n| x | 1 |"
    assert indexed_text("| x | 1 |", "row 7") == "| x | 1 |"
    long = " > ".join(f"Level {i} heading with words" for i in range(12))
    head = indexed_text("body", long).split("\n")[0]
    assert len(head) <= HEADING_INDEX_CHARS and long.endswith(head) and head.startswith("Level")


def test_a_heading_path_too_long_for_a_small_model_keeps_its_innermost_levels(small_limit_embedder: Embedder) -> None:
    # Even the 120 characters of it that are indexed would take more than half of a 64-token model.
    path = tuple(f"第{i}章关于员工请假、差旅和费用报销审批的详细规定与流程说明" for i in range(6)) + ("退款",)
    chunker = Chunker(ChunkerSettings(target_tokens=20, overlap_tokens=0), small_limit_embedder)
    chunks = chunker.chunk(_doc(" ".join(EN_SENTENCES), heading_path=path))
    assert chunks
    heading = chunks[0].section
    assert heading.endswith("退款") and len(heading) < len(" > ".join(path))  # outer levels dropped
    assert small_limit_embedder.count_tokens([indexed_text("", heading)])[0] - chunker.overhead <= 32
    counts = small_limit_embedder.count_tokens([c.indexed_text for c in chunks])
    assert counts == [c.token_count for c in chunks] and max(counts) <= 64
