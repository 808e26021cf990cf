"""Ingestion time of a mixed folder holding every supported type, and where the time goes.

The folder is generated (the same builders the tests use, ``tests/support/documents.py``):
``--copies`` of each of a workbook (``--rows`` rows), a GBK CSV, a slide deck, an e-mail with a PDF
attachment, a two-page scanned PDF, a PNG notice, plus the files in samples/ (Markdown, HTML, DOCX,
PDF, GBK text). Each copy differs (its number is in the text), so nothing is deduplicated.

Per type: parse time in the isolated parser process (the default ``DocumentLoader``, OCR included)
and chunks. Then the whole folder through ``rag-ingest``'s path (``Indexer.ingest_paths``: parse,
chunk, embed, Milvus Lite + BM25) into a fresh data directory, timed end to end.

    python benchmarks/bench_formats.py --copies 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import cpu_model  # benchmarks/machine.py (scripts run from this folder)

from ingest.loaders import DocumentLoader, LoaderSettings  # noqa: E402
from tests.support.documents import (  # noqa: E402
    image_bytes,
    make_eml,
    make_pdf,
    make_pptx,
    make_scanned_pdf,
    make_xlsx,
    render_page,
)

REPO = Path(__file__).resolve().parents[1]


def write_folder(folder: Path, copies: int, rows: int) -> None:
    folder.mkdir(parents=True)
    for path in (REPO / "samples").iterdir():
        shutil.copy(path, folder / path.name)
    for n in range(copies):
        table = [("产品", "型号", "单价 (元)", "库存")] + [(f"配件 {n}-{i}", f"P-{i:04d}", 20 + i, n + i) for i in range(rows)]
        (folder / f"价格表_{n}.xlsx").write_bytes(make_xlsx(table, sheet="价格"))
        csv = "门店,地址,电话\n" + "".join(f"门店 {n}-{i},上海市徐汇区 {i} 号,021-6470 {i:04d}\n" for i in range(rows // 4))
        (folder / f"门店_{n}.csv").write_bytes(csv.encode("gbk"))
        slides = [(f"Review {n}.{s}", f"Revenue grew {s + n}% in region {s}. Churn was {3 + s / 10:.1f}%.", "Notes.")
                  for s in range(8)]
        (folder / f"review_{n}.pptx").write_bytes(make_pptx(slides))
        invoice = make_pdf([f"Invoice {n}. Total due: {7940 + n} EUR within 30 days."])
        (folder / f"invoice_{n}.eml").write_bytes(
            make_eml(f"Invoice {n}", "<p>Please find the invoice attached.</p>", [("invoice.pdf", invoice)])
        )
        lines = [f"房屋租赁合同 第 {n} 号", "第三条 租期为两年，自签订之日起计算。", "第四条 押金为人民币八千元整。",
                 "The tenant pays the rent monthly, in advance.", "第五条 租金每月五日前支付。"]
        (folder / f"扫描合同_{n}.pdf").write_bytes(make_scanned_pdf([lines, lines[::-1]]))
        (folder / f"通知_{n}.png").write_bytes(image_bytes(render_page([f"停车场通知 {n}", "地下车库周六关闭。"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--rows", type=int, default=400, help="rows per generated workbook")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from ingest.chunking import Chunker
    from rag_app.config import Settings
    from rag_app.service import KnowledgeBase

    work = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    try:
        folder = work / "docs"
        write_folder(folder, args.copies, args.rows)
        print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        kb = KnowledgeBase(Settings(data_dir=work / "data")).warm_up()
        chunker = Chunker(kb.settings.chunker, kb.embedder)
        loader = DocumentLoader(LoaderSettings())
        loader(b"# warm", "warm.md")  # start the parser process outside the timings
        per_type: dict[str, dict[str, float]] = defaultdict(lambda: {"files": 0, "parse_s": 0.0, "chunks": 0, "mb": 0.0})
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            start = time.perf_counter()
            doc = loader(data, str(path))
            row = per_type[path.suffix.lower()]
            row["parse_s"] += time.perf_counter() - start
            row["files"] += 1
            row["mb"] += len(data) / 1e6
            row["chunks"] += len(chunker.chunk(doc))
        print("\n| type | files | MB | parse s (isolated, OCR included) | s per file | chunks |")
        print("|---|---:|---:|---:|---:|---:|")
        for suffix, row in sorted(per_type.items()):
            print(f"| {suffix} | {row['files']:.0f} | {row['mb']:.2f} | {row['parse_s']:.2f} | "
                  f"{row['parse_s'] / row['files']:.2f} | {row['chunks']:.0f} |")
        start = time.perf_counter()
        report = kb.ready_indexer().ingest_paths([folder])
        total = time.perf_counter() - start
        files = sum(int(r["files"]) for r in per_type.values())
        chunks = sum(int(r["chunks"]) for r in per_type.values())
        print(f"\nwhole folder through Indexer.ingest_paths: {files} files, {report.chunks_added} chunks, "
              f"{total:.1f} s ({report.chunks_added / total:.1f} chunks/s); failed: {report.failed or 'none'}")
        if args.json:
            args.json.write_text(json.dumps({"per_type": per_type, "files": files, "chunks": chunks,
                                             "ingest_s": total, "chunks_added": report.chunks_added}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
