"""OCR throughput and accuracy on this machine (Tesseract through ``ingest.loaders.ocr``).

Pages are rendered here: A4 at 300 dpi (2480 x 3508 px), ~10 pt text (42 px, WenQuanYi Micro Hei),
black on white, from real text where the shared data sets are present (CMRC paragraphs for Chinese,
SciFact abstracts for English) and built-in paragraphs otherwise (always for traditional Chinese).
Kinds: ``zh`` (simplified), ``tra`` (traditional), ``en``, ``mixed`` (Chinese paragraphs with
English sentences). Two measurements on the same pages:

* ``ocr_image``: one page at a time, one Tesseract process at a time (what a single image costs);
* ``load_pdf``: the pages of each kind in one scanned PDF (images only, no text layer), as
  ingestion reads it: rendered with PDFium, one Tesseract process per core, the language choice
  shared by the file's pages.

Accuracy: 1 - edit distance / reference length, over characters without whitespace (Chinese, mixed)
or over words (English). ``--omp`` adds the raw Tesseract time of one page with its default OpenMP
threads against ``OMP_THREAD_LIMIT=1`` (why the loader sets it).

    python benchmarks/bench_ocr.py                 # 3 pages per kind, ~3-4 min on 2 cores
    python benchmarks/bench_ocr.py --pages 1 --omp --json /tmp/ocr.json
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from ingest.loaders import ocr  # noqa: E402
from ingest.loaders.pdf import load_pdf  # noqa: E402
from ingest.settings import LoaderSettings  # noqa: E402
from tests.support.documents import CJK_FONT, char_accuracy, word_accuracy, wrap_lines  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
FONT = CJK_FONT
A4 = (2480, 3508)
KINDS = ("zh", "tra", "en", "mixed")
log = logging.getLogger("bench_ocr")

ZH_BUILTIN = [
    "入职满一年的正式员工每年享有五天带薪年假，入职满五年的员工每年享有十天带薪年假。差旅报销需在出差结束后七天内提交，"
    "并附上发票原件和审批单。公司每季度组织一次安全培训，所有新员工必须在入职后一个月内完成信息安全课程。",
    "本系统支持多种文件格式，包括文本文件、网页与演示文稿。上传的文件会先经过检查，过大的文件或无法读取的内容将被拒绝并显示原因。"
    "系统会把每份文件切分成较小的段落，再为每个段落计算向量，以便在用户提问时找到最相关的内容。",
    "台风来临前，请确认门窗关紧，并准备足够的饮用水、干粮与手电筒。学校与机关是否停班停课，将由县市政府于前一天晚上八点前宣布。"
    "民众应随时留意气象局发布的最新消息，避免前往海边或山区。",
]
TRA_BUILTIN = [
    "入職滿一年的正式員工每年享有五天帶薪年假，入職滿五年的員工每年享有十天帶薪年假。差旅報銷需在出差結束後七天內提交，"
    "並附上發票原件和審批單。公司每季度組織一次安全培訓，所有新員工必須在入職後一個月內完成資訊安全課程。",
    "本系統支援多種檔案格式，包括文字檔、網頁與簡報。上傳的文件會先經過檢查，過大的檔案或無法讀取的內容將被拒絕並顯示原因。"
    "系統會把每份文件切分成較小的段落，再為每個段落計算向量，以便在使用者提問時找到最相關的內容。",
    "颱風來臨前，請確認門窗關緊，並準備足夠的飲用水、乾糧與手電筒。學校與機關是否停班停課，將由縣市政府於前一天晚上八點前宣佈。"
    "民眾應隨時留意氣象局發佈的最新消息，避免前往海邊或山區。若發現路樹倒塌或電線掉落，請立即撥打電話通報，切勿自行處理。",
]
EN_BUILTIN = [
    "The maximum upload size is two hundred megabytes per file, and larger files are refused before they are read. "
    "Scanned documents are converted to text with an optical character recognition engine that runs on the server, "
    "so no page ever leaves the machine. Each page takes a few seconds on two processor cores, which is why the "
    "number of pages read per file is limited by a setting.",
    "Questions can be asked in Chinese or English, and every answer cites the page it came from so that readers can "
    "check the original document themselves. Administrators can change the limits in the configuration file and "
    "restart the service; documents that were already indexed are kept.",
]


# --- pages --------------------------------------------------------------------------------------------------


def _jsonl(path: Path, n: int, min_len: int) -> list[str]:
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            text = " ".join(json.loads(line).get("text", "").split())
            if len(text) >= min_len:
                out.append(text)
            if len(out) >= n:
                break
    return out


def _fill(paragraphs: list[str], start: int, budget: int) -> str:
    """Paragraphs from ``start`` (cycling) until ``budget`` characters, cut at a paragraph."""
    out: list[str] = []
    i = start
    while sum(len(p) for p in out) < budget:
        out.append(paragraphs[i % len(paragraphs)])
        i += 1
    return "\n".join(out)


def page_texts(n: int) -> dict[str, list[str]]:
    zh = _jsonl(SHARED / "cmrc2018-trial" / "corpus.jsonl", 60, 200) or ZH_BUILTIN
    en = _jsonl(SHARED / "scifact-dev" / "corpus.jsonl", 60, 600) or EN_BUILTIN
    english_sentences = [s for p in en for s in re.split(r"(?<=\.) ", p) if 40 < len(s) < 200]
    mixed = [f"{z} {e}" for z, e in zip(zh[1::2], english_sentences[::3])]
    # ~10 pt on A4: a realistic page holds ~1000 Chinese characters or ~400 English words.
    return {
        "zh": [_fill(zh, 3 * i, 1000) for i in range(n)],
        "tra": [_fill(TRA_BUILTIN, i, 900) for i in range(n)],
        "en": [_fill(en, 3 * i, 2400) for i in range(n)],
        "mixed": [_fill(mixed, 2 * i, 1100) for i in range(n)],
    }


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines += wrap_lines(paragraph, font, width) + [""]
    return lines


def render_page(text: str, size: int = 42) -> tuple[Image.Image, str]:
    """The page image and the text that fits on it (the reference for accuracy)."""
    font = ImageFont.truetype(FONT, size)
    margin, pitch = 200, int(size * 1.6)
    lines = _wrap(text, font, A4[0] - 2 * margin)[: (A4[1] - 2 * margin) // pitch]
    image = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * pitch), line, font=font, fill=0)
    return image, "\n".join(lines)


# --- accuracy -----------------------------------------------------------------------------------------------


def accuracy(kind: str, reference: str, found: str) -> float:
    return word_accuracy(reference, found) if kind == "en" else char_accuracy(reference, found)


# --- runs ------------------------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def omp_check(image: Image.Image) -> dict[str, float]:
    """Seconds of one raw Tesseract run (chi_sim+eng) with its default threads and with one."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    out = {}
    runs: list[tuple[str, dict[str, str]]] = [("omp_default_s", {}), ("omp_1_s", {"OMP_THREAD_LIMIT": "1"})]
    for label, extra in runs:
        env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
        env.update(extra)
        start = time.perf_counter()
        subprocess.run(["tesseract", "stdin", "stdout", "-l", "chi_sim+eng", "--psm", "3", "--dpi", "300"],
                       input=buf.getvalue(), capture_output=True, env=env, check=True)
        out[label] = time.perf_counter() - start
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=3, help="pages per kind (zh, tra, en, mixed)")
    p.add_argument("--omp", action="store_true", help="also time raw Tesseract with default OpenMP threads")
    p.add_argument("--json", type=Path, default=REPO / ".bench" / "bench_ocr.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not ocr.tesseract_available():
        sys.exit("Tesseract is not installed (make ocr)")
    limits = LoaderSettings(parse_timeout_s=0)  # no budget: every page is read

    pages: list[tuple[str, Image.Image, str]] = []
    for kind, texts in page_texts(args.pages).items():
        for text in texts:
            image, reference = render_page(text)
            pages.append((kind, image, reference))
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"tesseract languages {sorted(ocr.installed_languages())}, {ocr.ocr_workers()} OCR workers")
    print(f"{len(pages)} pages, A4 at 300 dpi, 42 px text\n")

    per_kind: dict[str, dict[str, list[float]]] = {k: {"s": [], "acc": [], "chars": []} for k in KINDS}
    for kind, image, reference in pages:
        start = time.perf_counter()
        text = ocr.ocr_image(image, limits)
        per_kind[kind]["s"].append(time.perf_counter() - start)
        per_kind[kind]["acc"].append(accuracy(kind, reference, text))
        per_kind[kind]["chars"].append(len(re.sub(r"\s", "", reference)))

    # One scanned PDF per kind: a document is in one script (a file's pages share its language choice).
    records = _Records()
    logging.getLogger("ingest.loaders").addHandler(records)
    logging.getLogger("ingest.loaders").setLevel(logging.INFO)
    pdf: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        kind_pages = [(image, reference) for k, image, reference in pages if k == kind]
        if not kind_pages:
            continue
        buf = io.BytesIO()
        images = [image for image, _ in kind_pages]
        images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=300)
        start = time.perf_counter()
        doc = load_pdf(buf.getvalue(), f"scan-{kind}.pdf", limits)
        seconds = time.perf_counter() - start
        by_page = {s.page: s.text for s in doc.sections}
        accs = [accuracy(kind, ref, by_page.get(n, "")) for n, (_, ref) in enumerate(kind_pages, 1)]
        read = [m for m in records.messages if "OCR read" in m and f"scan-{kind}.pdf" in m]
        pdf[kind] = {"s": seconds, "pages": len(kind_pages), "acc": statistics.mean(accs),
                     "languages": read[-1].split(" s (", 1)[-1].rstrip(")") if read else ""}

    rows: list[dict[str, Any]] = []
    header = (f"{'kind':6} {'pages':>5} {'chars/page':>10} | {'ocr_image s/page':>16} {'pages/min':>9} {'accuracy':>8} "
              f"| {'load_pdf pages/min':>18} {'accuracy':>8}  readings")
    print(header)
    print("-" * (len(header) + 30))
    for kind in KINDS:
        k = per_kind[kind]
        if not k["s"]:
            continue
        row = {
            "kind": kind,
            "pages": len(k["s"]),
            "chars_per_page": round(statistics.mean(k["chars"])),
            "measure": "words" if kind == "en" else "characters",
            "ocr_image_s_per_page": round(statistics.mean(k["s"]), 2),
            "ocr_image_pages_per_min": round(60 / statistics.mean(k["s"]), 1),
            "ocr_image_accuracy": round(statistics.mean(k["acc"]), 4),
            "ocr_image_accuracy_min": round(min(k["acc"]), 4),
            "load_pdf_s": round(pdf[kind]["s"], 1),
            "load_pdf_pages_per_min": round(60 * pdf[kind]["pages"] / pdf[kind]["s"], 1),
            "load_pdf_accuracy": round(pdf[kind]["acc"], 4),
            "load_pdf_readings": pdf[kind]["languages"],
        }
        rows.append(row)
        print(f"{kind:6} {row['pages']:5} {row['chars_per_page']:10} | {row['ocr_image_s_per_page']:16.2f} "
              f"{row['ocr_image_pages_per_min']:9.1f} {row['ocr_image_accuracy']:8.3f} | "
              f"{row['load_pdf_pages_per_min']:18.1f} {row['load_pdf_accuracy']:8.3f}  {row['load_pdf_readings']}")
    all_s = [s for k in per_kind.values() for s in k["s"]]
    pdf_s = sum(v["s"] for v in pdf.values())
    print(f"\nocr_image, all pages: {statistics.mean(all_s):.2f} s/page = {60 * len(all_s) / sum(all_s):.1f} pages/min "
          "(one page at a time)")
    print(f"load_pdf, all pages: {pdf_s:.1f} s = {60 * len(pages) / pdf_s:.1f} pages/min "
          f"({ocr.ocr_workers()} Tesseract processes at a time)")
    result: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "page": {"size_px": A4, "dpi": 300, "font_px": 42},
        "kinds": rows,
        "ocr_image_s_per_page": round(statistics.mean(all_s), 2),
        "ocr_image_pages_per_min": round(60 * len(all_s) / sum(all_s), 1),
        "load_pdf_pages": len(pages),
        "load_pdf_s": round(pdf_s, 1),
        "load_pdf_pages_per_min": round(60 * len(pages) / pdf_s, 1),
        "ocr_workers": ocr.ocr_workers(),
    }
    if args.omp:
        zh_image = next(image for kind, image, _ in pages if kind == "zh")
        result["omp"] = {k: round(v, 2) for k, v in omp_check(zh_image).items()}
        print(f"raw tesseract, one zh page: default OpenMP threads {result['omp']['omp_default_s']:.1f} s, "
              f"OMP_THREAD_LIMIT=1 {result['omp']['omp_1_s']:.1f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
