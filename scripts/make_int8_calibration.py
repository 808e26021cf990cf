"""Regenerate ``ingest/embedding/data/int8_calibration.jsonl``: the texts the int8 OpenVINO
embedder (``embedder.runtime: openvino-int8``) is calibrated on when it is built.

    python scripts/make_int8_calibration.py

Only text written for this project (licence: the project's): the chunks of the English answer-set
documents (``benchmarks/answer_sets/*/documents``, cut by the pipeline's own chunker, so they have
the lengths real chunks have), the generic off-topic questions of both languages
(``rag_app.calibration.offtopic``) as queries, and the same questions joined a dozen at a time as
Chinese and English passage-length inputs. None of the evaluation sets (SciFact, CMRC) and none of
``samples/`` (the tests compare runtimes on those) is in it. Deterministic.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ingest.chunking import Chunker  # noqa: E402
from ingest.embedding import Embedder  # noqa: E402
from ingest.embedding.openvino_encoder import CALIBRATION_FILE  # noqa: E402
from ingest.loaders import load_document  # noqa: E402
from ingest.settings import ChunkerSettings, EmbedderSettings  # noqa: E402
from rag_app.calibration.offtopic import load_pool  # noqa: E402

QUESTIONS_PER_PASSAGE = 12
EVERY_NTH_QUESTION = 6  # queries: a sixth of each pool (about 100 a language) is enough for their ranges


def main() -> None:
    embedder = Embedder(EmbedderSettings(cache_dir=str(REPO / "data" / "models")))
    chunker = Chunker(ChunkerSettings(), embedder)
    items: list[dict[str, str]] = []
    for path in sorted((REPO / "benchmarks" / "answer_sets").glob("*/documents/*")):
        items += [{"kind": "passage", "text": c.text} for c in chunker.chunk(load_document(path))]
    for language, joiner in (("zh", ""), ("en", " ")):
        questions = load_pool(language)
        for start in range(0, len(questions), QUESTIONS_PER_PASSAGE):
            items.append({"kind": "passage", "text": joiner.join(questions[start:start + QUESTIONS_PER_PASSAGE])})
        items += [{"kind": "query", "text": q} for q in questions[::EVERY_NTH_QUESTION]]
    CALIBRATION_FILE.parent.mkdir(parents=True, exist_ok=True)
    with CALIBRATION_FILE.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{CALIBRATION_FILE}: {len(items)} texts")


if __name__ == "__main__":
    main()
