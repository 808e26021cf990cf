"""Same-language off-topic questions by splitting a corpus into topics (a tiny BEIR folder)."""
from __future__ import annotations

import json
from pathlib import Path

from ingest.beir import load_qrels, load_queries
from rag_app.evaluation.topic_split import topic_split, write_split

TOPICS = {
    "cooking": "recipe oven flour sugar butter bake dough kitchen",
    "football": "goal striker league referee penalty stadium match team",
    "astronomy": "planet orbit telescope galaxy star comet nebula moon",
    "banking": "loan interest account deposit mortgage credit bank rate",
}


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for topic, words in TOPICS.items():
        for a in range(2):  # two articles per topic, two paragraphs each (same title)
            for p in range(2):
                did = f"{topic}-{a}-{p}"
                docs.append({"_id": did, "title": f"{topic} article {a}", "text": f"{words} paragraph {p} {a}"})
                queries.append({"_id": f"q-{did}", "text": f"{words.split()[p]} {words.split()[a + 2]}?"})
                qrels.append(f"q-{did}\t{did}\t1")
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries), encoding="utf-8")
    (folder / "qrels" / "dev.tsv").write_text("\n".join(qrels), encoding="utf-8")
    return folder


def test_whole_articles_are_held_out_and_questions_follow_their_evidence(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "set")
    s = topic_split(folder, held_out=0.25, clusters=4, seed=0)
    assert s.kept_docs.isdisjoint(s.held_docs) and len(s.kept_docs | s.held_docs) == 16
    assert 4 <= len(s.held_docs) <= 8
    for article in {d.rsplit("-", 1)[0] for d in s.held_docs}:  # never half an article
        assert {f"{article}-0", f"{article}-1"} <= s.held_docs
    assert len(s.in_domain) + len(s.off_topic) == 16
    assert all(q.removeprefix("q-") in s.held_docs for q in s.off_topic)
    assert topic_split(folder, held_out=0.25, clusters=4, seed=0) == s  # seeded


def test_the_split_is_written_as_two_beir_folders(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "set")
    all_queries = load_queries(folder)
    (folder / "answers.jsonl").write_text(
        "".join(json.dumps({"_id": q, "answers": [f"gold {q}"]}) + "\n" for q in all_queries), encoding="utf-8")
    s = topic_split(folder, held_out=0.25, clusters=4, seed=0)
    kept, held = write_split(folder, tmp_path / "out", s)
    gold_in = [json.loads(line)["_id"] for line in (kept / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert set(gold_in) == set(s.in_domain)  # gold answers travel with their questions
    assert kept.name == "set-topics-in" and held.name == "set-topics-out"
    assert set(load_queries(kept)) == set(s.in_domain) and set(load_qrels(held)) == set(s.off_topic)
    corpus = [json.loads(line)["_id"] for line in (held / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert set(corpus) == s.held_docs
