"""Training examples in FlagEmbedding's JSONL: one ``{"query", "pos": [...], "neg": [...]}`` per line.

Generated sets add ``doc_id``, ``pos_id``, ``neg_ids`` and ``generator`` (FlagEmbedding ignores
extra keys); a user's own labelled file needs only the three standard ones.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from ingest.files import atomic_write

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_TEXT_CHARS = 20_000  # a passage longer than this is not a chunk: the file is probably wrong


class TrainingDataError(ValueError):
    """A training file that cannot be used; the message names the line and the problem."""


@dataclass
class TrainingExample:
    query: str
    pos: list[str]
    neg: list[str]
    doc_id: str = ""  # the positive's document: held-out splits and negative filtering use it
    pos_id: str = ""
    neg_ids: list[str] = field(default_factory=list)
    generator: str = ""  # llm | sentence | user

    def to_json(self) -> str:
        row = {k: v for k, v in asdict(self).items() if v not in ("", [])}
        row.setdefault("neg", [])
        return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: Path, examples: Iterable[TrainingExample]) -> int:
    """Write ``examples`` atomically (a failed generation keeps the previous file); return how many."""
    n = 0

    def write(out: IO[bytes]) -> None:
        nonlocal n
        for ex in examples:
            out.write((ex.to_json() + "\n").encode("utf-8"))
            n += 1

    atomic_write(path, write)
    return n


def _strings(value: object, key: str, where: str, allow_empty: bool) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainingDataError(f"{where}: '{key}' must be a list of strings")
    texts = [v for v in value if v.strip()]
    if not texts and not allow_empty:
        raise TrainingDataError(f"{where}: '{key}' holds no text")
    if any(len(v) > MAX_TEXT_CHARS for v in texts):
        raise TrainingDataError(f"{where}: a '{key}' passage is over {MAX_TEXT_CHARS:,} characters")
    return texts


def read_jsonl(path: Path) -> list[TrainingExample]:
    """Validated examples; a bad line raises with its number (nothing is half-loaded)."""
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TrainingDataError(f"{path}: over {MAX_FILE_BYTES // 2**20} MB")
    examples: list[TrainingExample] = []
    with path.open("r", encoding="utf-8", errors="strict") as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path.name} line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainingDataError(f"{where}: not JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise TrainingDataError(f"{where}: expected an object with query, pos and neg")
                query = row.get("query")
                if not isinstance(query, str) or not query.strip():
                    raise TrainingDataError(f"{where}: 'query' must be a non-empty string")
                examples.append(
                    TrainingExample(
                        query=query.strip(),
                        pos=_strings(row.get("pos"), "pos", where, allow_empty=False),
                        neg=_strings(row.get("neg", []), "neg", where, allow_empty=True),
                        doc_id=str(row.get("doc_id", "")),
                        pos_id=str(row.get("pos_id", "")),
                        neg_ids=[str(x) for x in row.get("neg_ids", []) if isinstance(x, str)],
                        generator=str(row.get("generator", "user")),
                    )
                )
        except UnicodeDecodeError:
            raise TrainingDataError(f"{path}: not UTF-8 text") from None
    if not examples:
        raise TrainingDataError(f"{path}: no examples")
    return examples


def split_by_document(
    examples: Sequence[TrainingExample], held_out_fraction: float, seed: int
) -> tuple[list[TrainingExample], list[TrainingExample]]:
    """Train and held-out examples with no document in both (a question about a held-out document
    must not have taught the model that document)."""
    import random

    docs = sorted({ex.doc_id or ex.pos[0] for ex in examples})
    random.Random(seed).shuffle(docs)
    n_held = round(len(docs) * held_out_fraction) if held_out_fraction > 0 else 0
    if held_out_fraction > 0 and len(docs) > 1:
        n_held = min(max(n_held, 1), len(docs) - 1)
    held = set(docs[:n_held])
    train = [ex for ex in examples if (ex.doc_id or ex.pos[0]) not in held]
    test = [ex for ex in examples if (ex.doc_id or ex.pos[0]) in held]
    return train, test
