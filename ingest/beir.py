"""Adapter for BEIR-format folders (corpus.jsonl, queries.jsonl, qrels/*.tsv)."""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from ingest.types import LoadedDocument, Section, sha256_hex

_PREFIX = "beir:"


def is_beir_dir(path: str | Path) -> bool:
    return (Path(path) / "corpus.jsonl").is_file()


def beir_source(dataset: str, corpus_id: str) -> str:
    return f"{_PREFIX}{dataset}:{corpus_id}"


def corpus_id_of(source: str) -> str | None:
    """The BEIR corpus id of a chunk's source, or None for ordinary files."""
    if not source.startswith(_PREFIX):
        return None
    return source.split(":", 2)[2]


def iter_corpus(path: str | Path) -> Iterator[LoadedDocument]:
    folder = Path(path)
    dataset = folder.resolve().name
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            title = (row.get("title") or "").strip()
            body = (row.get("text") or "").strip()
            text = f"{title}\n\n{body}" if title else body
            if not text:
                continue
            yield LoadedDocument(
                source=beir_source(dataset, str(row["_id"])),
                doc_id=sha256_hex(text),
                file_type="beir",
                sections=(Section(text=text),),
                title=title,
            )


def corpus_size(path: str | Path) -> int:
    with open(Path(path) / "corpus.jsonl", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def load_queries(path: str | Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(Path(path) / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["_id"])] = row["text"]
    return out


def load_qrels(path: str | Path, split: str = "dev") -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(Path(path) / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader)
        if header and header[0] != "query-id":  # no header row: treat it as data
            qrels.setdefault(header[0], {})[header[1]] = int(header[2])
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels
