"""The judged answer sets (``benchmarks/answer_sets``: English, and one Chinese) are consistent:
every answerable question has a judged document that holds its gold answer word for word (as the
loader reads it), and every written unanswerable question has none."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.beir import load_qrels, load_queries
from ingest.loaders import load_document
from rag_app.cli.evaluate_answers import documents_folder
from rag_app.evaluation.answer_eval import load_answers

SETS = Path(__file__).resolve().parents[3] / "benchmarks" / "answer_sets"


@pytest.mark.parametrize("name", ["samples-en", "handbook-en", "library-en", "council-en", "rail-en", "clinic-en", "campus-en", "leisure-en", "insure-en", "air-en", "bank-en", "energy-en", "telecom-en", "vet-en", "parcel-en", "hotel-en", "carhire-en", "property-zh"])
def test_every_gold_answer_is_in_its_judged_document(name: str) -> None:
    folder = SETS / name
    queries, qrels, golds = load_queries(folder), load_qrels(folder, "dev"), load_answers(folder)
    assert set(golds) == set(queries)
    answerable = {q for q, answers in golds.items() if answers}
    assert set(qrels) == answerable  # judged documents for exactly the answerable questions
    docs = documents_folder(folder)
    assert docs is not None
    texts = {p.name: load_document(p).text.lower() for p in docs.iterdir() if p.is_file()}
    for qid in sorted(answerable):
        judged = [texts[doc] for doc, grade in qrels[qid].items() if grade > 0]
        assert judged, qid
        assert any(gold.lower() in text for gold in golds[qid] for text in judged), (qid, golds[qid])
    assert len(answerable) >= 28 and len(queries) - len(answerable) >= 11
