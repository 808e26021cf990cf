"""Every supported format through the real pipeline (isolated parser, e5, Milvus Lite, BM25): a mixed
folder indexes in one pass, the stores agree, and a question about a figure in a spreadsheet row, a
slide, an e-mail's attachment or a scanned page retrieves, and cites, the chunk that holds it (the
answer from a stub LLM; ``-m slow``: from the packaged one)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_app.answering import Answerer, FinalEvent
from rag_app.config import AnswerSettings
from rag_app.llm import LLMSettings, make_llm
from tests.support.documents import (
    image_bytes,
    make_eml,
    make_pdf,
    make_pptx,
    make_scanned_pdf,
    make_xlsx,
    render_page,
)
from tests.support.knowledge_base import assert_stores_agree
from tests.support.paths import REPO
from tests.support.stub_llm_server import StubLLMServer

PRICES = [("产品", "型号", "单价 (元)", "库存")] + [
    (f"配件 {i}", f"P-{i:03d}", 20 + i, 100 + i) for i in range(60)
] + [("工业路由器", "R-900", 4380, 12)] + [(f"线缆 {i}", f"C-{i:03d}", 5 + i, 500 + i) for i in range(60)]

# (question, file the answer is in, what the cited chunk must hold)
QUESTIONS = [
    ("工业路由器 R-900 的单价是多少元？", "价格表.xlsx", "| 工业路由器 | R-900 | 4380 | 12 |"),
    ("徐家汇店的电话是多少？", "门店.csv", "021-6470 1188"),
    ("What was the Q3 churn rate in the quarterly review deck?", "q3_review.pptx", "3.1%"),
    ("What is the total of the Lakeside invoice?", "invoice_mail.eml", "7,940 EUR"),
    ("押金是人民币多少元？", "扫描合同.pdf", "押金"),
]


def _write_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "价格表.xlsx").write_bytes(make_xlsx(PRICES, sheet="价格", title="2026 价格表"))
    stores = "门店,地址,电话\n徐家汇店,上海市徐汇区虹桥路 1 号,021-6470 1188\n西湖店,杭州市西湖区湖滨路 8 号,0571-8702 3300\n"
    (folder / "门店.csv").write_bytes(stores.encode("gbk"))
    (folder / "q3_review.pptx").write_bytes(
        make_pptx(
            [
                ("Q3 review", "Revenue grew 12% to 4.2M USD.", ""),
                ("Customers", "Churn fell to 3.1% in Q3, from 4.0% in Q2.", "Mention the enterprise renewals."),
            ]
        )
    )
    invoice = make_pdf(["Lakeside Catering GmbH. Invoice 2024-117. Total due: 7,940 EUR within 30 days."])
    (folder / "invoice_mail.eml").write_bytes(
        make_eml("Invoice from Lakeside", "<p>Please find the catering invoice attached.</p>", [("invoice.pdf", invoice)])
    )
    (folder / "扫描合同.pdf").write_bytes(
        make_scanned_pdf([["房屋租赁合同", "第三条 租期为两年。"], ["第四条 押金为人民币八千元整。", "第五条 租金每月支付。"]])
    )
    (folder / "通知.png").write_bytes(image_bytes(render_page(["停车场通知", "地下车库周六关闭。"])))


@pytest.fixture(scope="module")
def mixed_kb(tmp_path_factory: pytest.TempPathFactory, e5_model_dir: Path, e5_embedder):
    from tests.support.knowledge_base import build_kb

    root = tmp_path_factory.mktemp("formats")
    _write_folder(root / "docs")
    kb = build_kb(root / "data", e5_model_dir, e5_embedder)
    report = kb.ready_indexer().ingest_paths([root / "docs"])
    assert report.failed == [] and report.skipped == []
    assert sorted(Path(s).name for s in report.indexed) == sorted(p.name for p in (root / "docs").iterdir())
    return kb


def test_a_mixed_folder_indexes_every_format_and_the_stores_agree(mixed_kb) -> None:
    assert_stores_agree(mixed_kb)
    registry, _, _ = mixed_kb.stores()
    kinds = {Path(d.source).suffix for d in registry.documents()}
    assert kinds == {".xlsx", ".csv", ".pptx", ".eml", ".pdf", ".png"}


@pytest.mark.parametrize(("question", "file", "fact"), QUESTIONS, ids=[q[1] for q in QUESTIONS])
def test_a_figure_is_found_in_the_chunk_that_holds_it(mixed_kb, question: str, file: str, fact: str) -> None:
    result = mixed_kb.retriever.run(question)
    assert result.has_evidence, question
    top = result.chunks[0].chunk
    assert Path(top.source).name == file and fact in top.text, [c.chunk.text[:80] for c in result.chunks[:3]]
    if file.endswith(".xlsx"):
        # The chunk carries its header and names its rows: the router is on sheet row 62.
        assert top.text.startswith("| 产品 | 型号 | 单价 (元) | 库存 |\n| --- |")
        first, last = (int(n) for n in top.section.split("rows ")[1].split("-"))
        assert top.section.startswith("价格 > rows ") and first <= 62 <= last
    if file.endswith(".pdf"):
        assert top.page == 2  # the scanned page the deposit clause is on


def test_the_answer_cites_the_spreadsheet_row(mixed_kb) -> None:
    with StubLLMServer() as stub:
        stub.deltas = ["工业路由器 R-900 的单价是 4380 元 [1]。"]
        llm = make_llm(LLMSettings(backend="openai", base_url=stub.base_url, openai_model="stub"), Path("."))
        final = Answerer(mixed_kb, llm, AnswerSettings()).answer(QUESTIONS[0][0])
    assert isinstance(final, FinalEvent) and not final.refused
    (citation,) = final.citations
    chunk = citation.source.chunk
    assert Path(chunk.source).name == "价格表.xlsx" and "| 工业路由器 | R-900 | 4380 | 12 |" in chunk.text
    assert "rows" in chunk.location


# The packaged 0.5B model answers the Chinese spreadsheet question with a bare "[1]" (refused as
# unsupported: nothing invented); in English it reads the row. The 1.5B (configs/quality.yaml)
# answers both languages ("4380元 [1]"), measured by hand, not tested: it is an optional install.
@pytest.mark.slow
@pytest.mark.parametrize(("question", "file", "fact", "answer"), [
    ("What is the unit price of the R-900 router?", "价格表.xlsx", QUESTIONS[0][2], "4380"),
    (QUESTIONS[4][0], "扫描合同.pdf", QUESTIONS[4][2], "八千"),
])
def test_the_packaged_llm_answers_from_a_spreadsheet_row_and_a_scanned_page(
    mixed_kb, question: str, file: str, fact: str, answer: str
) -> None:
    cache = Path(os.environ.get("RAG_LLM_CACHE_DIR", REPO / "data" / "models"))
    llm = make_llm(LLMSettings(temperature=0.0, num_threads=2, max_new_tokens=64, cache_dir=str(cache)), cache)
    final = Answerer(mixed_kb, llm, AnswerSettings()).answer(question)
    assert isinstance(final, FinalEvent) and not final.refused, (final.refused, final.draft, final.answer)
    assert answer in final.answer, final.answer
    assert final.citations, final.answer
    chunk = final.citations[0].source.chunk
    assert Path(chunk.source).name == file and fact in chunk.text
