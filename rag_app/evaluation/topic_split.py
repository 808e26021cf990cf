"""Same-language off-topic questions from a development set: split its corpus by topic.

Documents sharing a title are one article; articles are clustered by their words (hashed TF-IDF,
seeded k-means), and whole clusters are held out until ``held_out`` of the documents are. The
knowledge base holds the rest. Questions whose judged documents all lie in the held-out clusters
are off-topic for it, in its own language and style; questions whose documents all stayed are
in-domain; questions straddling both are dropped. Both halves are written as BEIR folders, so
``rag-eval IN --ood OUT`` indexes the kept half as a knowledge base of its own and calibrates it
without ever seeing the held-out questions.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.beir import load_qrels, load_queries
from ingest.text_tokenizer import BM25Tokenizer

_DIM = 4096  # hashed vocabulary


@dataclass(frozen=True)
class TopicSplit:
    kept_docs: frozenset[str]
    held_docs: frozenset[str]
    in_domain: tuple[str, ...]  # question ids whose evidence stayed
    off_topic: tuple[str, ...]  # question ids whose evidence was held out


def _read_corpus(folder: Path) -> list[dict[str, str]]:
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _hashed_tfidf(texts: Sequence[str]) -> np.ndarray:
    tokenizer = BM25Tokenizer()
    rows = np.zeros((len(texts), _DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        for token in tokenizer.tokenize(text):
            rows[i, int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little") % _DIM] += 1
    df = (rows > 0).sum(axis=0)
    rows = np.log1p(rows) * np.log((1 + len(texts)) / (1 + df))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-9)


def _kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Spherical k-means; returns each row's cluster."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centres = x[rng.choice(len(x), size=k, replace=False)]
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmax(x @ centres.T, axis=1)
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c = members.sum(axis=0)
                centres[j] = c / max(float(np.linalg.norm(c)), 1e-9)
    return labels


def topic_split(folder: str | Path, held_out: float = 0.3, clusters: int = 24, seed: int = 0,
                split: str = "dev") -> TopicSplit:
    folder = Path(folder)
    docs = _read_corpus(folder)
    articles: dict[str, list[str]] = defaultdict(list)  # title (or id) -> doc ids
    text_of: dict[str, list[str]] = defaultdict(list)
    for d in docs:
        key = d.get("title") or d["_id"]
        articles[key].append(d["_id"])
        text_of[key].append(f"{d.get('title', '')} {d.get('text', '')}")
    keys = sorted(articles)
    labels = _kmeans(_hashed_tfidf([" ".join(text_of[k]) for k in keys]), clusters, seed)
    order = list(range(int(labels.max()) + 1))
    random.Random(seed).shuffle(order)
    held: set[str] = set()
    for cluster in order:
        if len(held) >= held_out * len(docs):
            break
        for key, label in zip(keys, labels):
            if label == cluster:
                held.update(articles[key])
    kept = {d["_id"] for d in docs} - held
    queries, qrels = load_queries(folder), load_qrels(folder, split)
    in_domain, off_topic = [], []
    for qid, judged in qrels.items():
        evidence = {c for c, g in judged.items() if g > 0}
        if qid not in queries or not evidence:
            continue
        if evidence <= kept:
            in_domain.append(qid)
        elif evidence <= held:
            off_topic.append(qid)
    return TopicSplit(frozenset(kept), frozenset(held), tuple(in_domain), tuple(off_topic))


def write_split(folder: str | Path, out_root: str | Path, s: TopicSplit, split: str = "dev") -> tuple[Path, Path]:
    """``<out_root>/<name>-topics-in`` (kept corpus, in-domain questions) and ``...-topics-out``
    (held-out corpus, off-topic questions), BEIR format."""
    folder, out_root = Path(folder), Path(out_root)
    name = folder.resolve().name
    docs = _read_corpus(folder)
    queries, qrels = load_queries(folder), load_qrels(folder, split)
    made = []
    for suffix, corpus_ids, qids in (("in", s.kept_docs, s.in_domain), ("out", s.held_docs, s.off_topic)):
        target = out_root / f"{name}-topics-{suffix}"
        (target / "qrels").mkdir(parents=True, exist_ok=True)
        with (target / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for d in docs:
                if d["_id"] in corpus_ids:
                    f.write(json.dumps(d, ensure_ascii=False) + "\n")
        with (target / "queries.jsonl").open("w", encoding="utf-8") as f:
            for qid in qids:
                f.write(json.dumps({"_id": qid, "text": queries[qid]}, ensure_ascii=False) + "\n")
        with (target / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid in qids:
                for cid, g in qrels[qid].items():
                    f.write(f"{qid}\t{cid}\t{g}\n")
        answers = folder / "answers.jsonl"
        if answers.is_file():  # gold answers travel with their questions (rag-eval --answers)
            wanted = set(qids)
            with answers.open(encoding="utf-8") as src, (target / "answers.jsonl").open("w", encoding="utf-8") as f:
                f.writelines(line for line in src if line.strip() and json.loads(line)["_id"] in wanted)
        made.append(target)
    return made[0], made[1]
