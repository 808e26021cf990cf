"""The retrieval stages one by one, and wired, over tiny in-memory fakes: no e5 model, no Milvus.

The fakes (``tests.support.fakes``) implement the protocols in ``rag_app.retrieval.protocols`` with
numpy and dicts, which is all a stage may rely on.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ingest.types import Chunk, Section, format_location, source_label
from rag_app.config import FusionSettings, RerankerSettings, RetrievalSettings, ThresholdSettings
from rag_app.retrieval.candidates import Candidates
from rag_app.retrieval.dense import DenseSearch
from rag_app.retrieval.fusion import Fusion, reciprocal_rank_fusion, weighted_score_sum
from rag_app.retrieval.kb_calibration import KnowledgeBaseCalibration
from rag_app.retrieval.keyword import KeywordSearch
from rag_app.retrieval.pipeline import HybridRetriever, clean_query
from rag_app.retrieval.rerank import Rerank
from rag_app.retrieval.results import RetrievedChunk
from rag_app.retrieval.threshold import ScoreCalibration, Threshold, load_reference_passages
from tests.support.fakes import (
    FixedQueryEmbedder,
    InMemoryVectorStore,
    LengthScorer,
    TermCountIndex,
    WhitespaceTokenizer,
    axis,
    unit,
)

DIM = 8


def _axis(i: int, noise: float = 0.0) -> np.ndarray:
    return axis(DIM, i, noise)


def _chunk(cid: str, text: str, page: int | None = None, section: str = "") -> Chunk:
    return Chunk(cid, f"doc-{cid}", f"/data/uploads/{cid}-0123456789ab.md", text, 0, page, section)


@pytest.fixture
def world():
    """Ten chunks: c0..c6 along axes 0..6, c7..c9 near axis 6. BM25 knows each chunk's own term
    "t<i>" and "shared", and an extra id "ghost" the vector store lacks. The query "alpha t1" is
    closest to c0, then c1 (dense); BM25 finds c1 only."""
    rows = {}
    texts = {}
    for i in range(10):
        cid = f"c{i}"
        axis = i if i < 7 else 6
        rows[cid] = (_chunk(cid, f"text {i} " + "word " * i, page=i or None), _axis(axis, noise=0.05 * (i // 7)))
        texts[cid] = [f"t{i}", "shared"]
    texts["ghost"] = ["t0", "shared"]
    embedder = FixedQueryEmbedder({"alpha t1": unit([1, 0.5, 0, 0, 0, 0, 0, 0])}, DIM)
    return embedder, InMemoryVectorStore(DIM, rows), TermCountIndex(texts), WhitespaceTokenizer()


def _retriever(world, **settings) -> HybridRetriever:
    embedder, vectors, bm25, tok = world
    reranker = settings.pop("reranker", None)
    return HybridRetriever(RetrievalSettings(**settings), embedder, vectors, bm25, tok, reranker)


# --- the one chunk record ----------------------------------------------------------------------


def test_location_is_spelled_once_for_sections_chunks_and_hits() -> None:
    assert format_location(3, "Intro > Setup") == "p. 3, Intro > Setup"
    assert format_location(None, "") == ""
    assert Section("x", page=2, heading_path=("A", "B")).location == "p. 2, A > B"
    hit = RetrievedChunk(_chunk("c1", "t", page=4, section="S"), 0.5, 1.0, 0.1, 2.0, 1, None, 0.3)
    assert hit.location == hit.chunk.location == "p. 4, S"


def test_retrieved_chunk_delegates_to_its_chunk_and_serialises_once() -> None:
    chunk = _chunk("c1", "some text", page=2, section="Leave")
    hit = RetrievedChunk(chunk, dense_score=0.81234, dense_z=float("nan"), dense_margin=0.05, bm25_score=3.0,
                         dense_rank=1, bm25_rank=None, fused_score=0.9)
    assert (hit.chunk_id, hit.doc_id, hit.source, hit.text, hit.ordinal, hit.page, hit.section) == (
        "c1", "doc-c1", chunk.source, "some text", 0, 2, "Leave")
    with pytest.raises(AttributeError):
        hit.text = "other"  # type: ignore[misc]
    # The exact keys and values the search API's hits had (plus "rank" there, "number" in sources).
    assert hit.to_dict() == {
        "source": chunk.source, "file": "c1.md", "page": 2, "section": "Leave", "location": "p. 2, Leave",
        "chunk_id": "c1", "text": "some text",
        "scores": {"relevance": None, "fused": 0.9, "dense": 0.8123, "dense_margin": 0.05, "dense_z": None,
                   "bm25": 3.0, "bm25_coverage": None, "rerank": None},
    }
    cut = hit.with_text("some …")
    assert cut.text == "some …" and hit.text == "some text" and cut.dense_score == hit.dense_score
    assert source_label("C:\\docs\\handbook-1a2b3c4d5e6f.md") == "handbook.md"


def test_a_numbered_source_serialises_as_its_retrieved_chunk() -> None:
    from rag_app.answering.prompt import NumberedSource
    from rag_app.retrieval.results import chunk_scores

    hit = RetrievedChunk(_chunk("c1", "x"), 0.5, 1.0, 0.1, 2.0, 1, 1, 0.3)
    assert chunk_scores(hit) == hit.to_dict()["scores"]
    assert NumberedSource(3, hit).to_dict() == {"number": 3, **hit.to_dict()}
    assert list(NumberedSource(3, hit).to_dict())[:2] == ["number", "source"]


def test_milvus_rows_become_chunks() -> None:
    from ingest.stores.milvus_store import _chunk as milvus_chunk

    hit = {"id": "c1", "distance": 0.7, "entity": {"doc_id": "d", "text": "t", "meta": '{"source": "s.md", "page": 3}'}}
    row = {"chunk_id": "c1", "doc_id": "d", "text": "t", "meta": {"source": "s.md", "ordinal": 2, "section": "A"}}
    assert milvus_chunk(hit) == Chunk("c1", "d", "s.md", "t", 0, 3, "")
    assert milvus_chunk(row) == Chunk("c1", "d", "s.md", "t", 2, None, "A")


# --- the stages ------------------------------------------------------------------------------


def test_dense_search_ranks_and_fills_cosines_for_chunks_it_did_not_return(world) -> None:
    embedder, vectors, _, _ = world
    dense = DenseSearch(embedder, vectors)
    qvec = dense.embed("alpha t1")
    assert qvec.dtype == np.float32
    hits = dense.run(qvec, 2)
    assert [c.chunk_id for c, _ in hits] == ["c0", "c1"] and hits[0][1] > hits[1][1]
    filled = dense.fill(qvec, ["c5", "missing"])
    assert list(filled) == ["c5"] and filled["c5"][1] == pytest.approx(float(vectors.rows["c5"][1] @ qvec))


def test_keyword_search_does_not_ask_the_index_without_tokens_or_ids(world) -> None:
    _, _, bm25, tok = world
    keyword = KeywordSearch(bm25, tok)
    assert len(keyword) == 11 and keyword.tokenize("The T1") == ["t1"]
    assert keyword.run([], 5) == [] and keyword.fill([], ["c1"]) == {} and keyword.fill(["t1"], []) == {}
    assert bm25.score_calls == 0
    assert keyword.run(["t1", "shared"], 2) == [("c1", 2.0), ("c0", 1.0)]
    assert keyword.fill(["t1"], ["c1", "c2"]) == {"c1": 1.0, "c2": 0.0}


def test_candidates_merge_both_legs_and_keep_the_bm25_ranking_whole() -> None:
    a, b = _chunk("a", "A"), _chunk("b", "B")
    found = Candidates.from_legs([(a, 0.9), (b, 0.8)], [("ghost", 5.0), ("c", 4.0), ("a", 3.0)])
    assert found.bm25_only() == ["ghost", "c"]
    found.add_dense({"c": (_chunk("c", "C"), 0.5)})  # the store has no "ghost"
    assert found.ids == ["a", "b", "c"] and found.dense_only() == ["b"]
    assert found.bm25_rank("c") == 2 and found.bm25_rank("b") is None and found.dense_rank("b") == 2
    found.add_bm25({"b": 0.0})
    assert found.dense_only() == [] and found.bm25_scores["b"] == 0.0


def test_fusion_stage_applies_the_configured_method() -> None:
    found = Candidates.from_legs([(_chunk("a", "A"), 0.9), (_chunk("b", "B"), 0.8)], [("b", 20.0), ("c", 1.0)])
    rrf = Fusion(FusionSettings(method="rrf", rrf_k=10, bm25_weight=0.5)).run(found)
    assert rrf == reciprocal_rank_fusion({"dense": ["a", "b"], "bm25": ["b", "c"]}, {"dense": 1.0, "bm25": 0.5}, 10)
    weighted = Fusion(FusionSettings(method="weighted_sum")).run(found)
    # Weighted sum runs over the candidates (c has no chunk yet, so it is none): missing scores are 0.
    assert weighted == weighted_score_sum(
        {"dense": {"a": 0.9, "b": 0.8}, "bm25": {"a": 0.0, "b": 20.0}}, {"dense": 1.0, "bm25": 1.0}
    )


def test_calibration_z_margin_and_reference_cache(world, tmp_path) -> None:
    embedder, vectors, bm25, _ = world
    calib = ScoreCalibration(embedder, vectors, bm25, sample_size=16, reference_cache_dir=tmp_path)
    qvec = _axis(0)
    cosines = np.array([1.0, 0.2], dtype=np.float32)
    z, margins = calib.run(qvec, cosines)
    sims = np.stack([v for _, v in vectors.rows.values()]) @ qvec
    mu = float(np.median(sims))
    sigma = max(1.4826 * float(np.median(np.abs(sims - mu))), 1e-3)
    np.testing.assert_allclose(z, (cosines - mu) / sigma, rtol=1e-6)
    ref = embedder.embed_documents(load_reference_passages())
    np.testing.assert_allclose(margins, cosines - float((ref @ qvec).max()), rtol=1e-6)
    assert embedder.document_calls == 2  # one in the calibration, one just above
    # The reference vectors are cached on disk: a second calibration (a restart) does not embed.
    again = ScoreCalibration(embedder, vectors, bm25, sample_size=16, reference_cache_dir=tmp_path)
    again.warm_up()
    assert embedder.document_calls == 2 and len(list(tmp_path.glob("reference-*.npy"))) == 1
    # A variant shares the reference vectors but draws its own sample.
    other = calib.variant(sample_size=4)
    assert other.reference_vectors() is calib.reference_vectors()
    assert np.isnan(other.run(qvec, cosines)[0]).all()  # 4 < 8 sampled chunks: no z at all


def test_calibration_resamples_when_the_corpus_grows_or_is_invalidated(world) -> None:
    embedder, vectors, bm25, _ = world
    calib = ScoreCalibration(embedder, vectors, bm25, sample_size=16)
    first = calib.background_vectors()
    assert calib.background_vectors() is first
    bm25.docs["new"] = ["x"]  # 11 -> 12: within 10%, the sample stays
    assert calib.background_vectors() is first
    bm25.docs["newer"] = ["x"]  # 11 -> 13: over 10% more
    assert calib.background_vectors() is not first
    second = calib.background_vectors()
    calib.invalidate()
    assert calib.background_vectors() is not second


def _hit(cid: str, text: str, fused: float, margin: float = 0.1, z: float = 1.0) -> RetrievedChunk:
    return RetrievedChunk(_chunk(cid, text), 0.8, z, margin, 1.0, 1, 1, fused)


def test_threshold_never_passes_a_missing_score() -> None:
    hits = [_hit("a", "A", 0.9, margin=0.5), _hit("b", "B", 0.8, margin=-0.1), _hit("c", "C", 0.7, z=float("nan"))]
    assert Threshold(ThresholdSettings(score="none")).run(hits) == (hits, [])
    passed, rejected = Threshold(ThresholdSettings(score="dense_margin", min_value=0.0)).run(hits)
    assert [c.chunk_id for c in passed] == ["a", "c"] and [c.chunk_id for c in rejected] == ["b"]
    passed, _ = Threshold(ThresholdSettings(score="dense_z", min_value=0.0)).run(hits)
    assert [c.chunk_id for c in passed] == ["a", "b"]
    assert Threshold(ThresholdSettings(score="rerank", min_value=-1e9)).run(hits)[0] == []  # not reranked


def test_rerank_reorders_the_head_and_keeps_the_tail() -> None:
    hits = [_hit("a", "x", 0.9), _hit("b", "xxx", 0.8), _hit("c", "xx", 0.7), _hit("d", "xxxx", 0.6)]
    scorer = LengthScorer()
    out = Rerank(scorer, RerankerSettings(enabled=True, model="fake", max_candidates=3)).run("q", list(hits))
    assert [c.chunk_id for c in out] == ["b", "c", "a", "d"] and scorer.seen == [["x", "xxx", "xx"]]
    assert out[3].rerank_score is None and out[0].rerank_score == 3.0
    late = [_hit("a", "x", 0.9), _hit("b", "xxx", 0.8)]
    assert Rerank(LengthScorer(out_of_time=True), RerankerSettings(max_candidates=3)).run("q", late) == late
    assert all(c.rerank_score is None for c in late)


# --- the pipeline ----------------------------------------------------------------------------


def test_pipeline_over_fakes(world) -> None:
    embedder, vectors, bm25, _ = world
    embedder.queries["t5 t0"] = _axis(0)
    retriever = _retriever(world, threshold=ThresholdSettings(score="none"), dense_top_k=2, bm25_top_k=3)
    result = retriever.run("t5 t0", top_k=10)
    assert list(result.timings_ms) == ["embed", "dense", "bm25", "merge", "total"]
    # Dense: c0, c7. BM25: c0, c5, ghost (not in the store: fetched, not found, never a candidate).
    assert vectors.fetched == [["c5", "ghost"]] and bm25.score_calls == 1
    by_id = {c.chunk_id: c for c in result.chunks}
    assert set(by_id) == {"c0", "c5", "c7"} and result.candidates == 3
    assert (by_id["c0"].dense_rank, by_id["c0"].bm25_rank) == (1, 1)
    assert (by_id["c5"].dense_rank, by_id["c5"].bm25_rank) == (None, 2)  # ghost still holds rank 3
    assert (by_id["c7"].dense_rank, by_id["c7"].bm25_rank) == (2, None)
    # Every candidate carries both legs' scores, whichever leg found it.
    assert by_id["c5"].dense_score == pytest.approx(0.0, abs=1e-6) and by_id["c7"].bm25_score == 0.0
    assert all(math.isfinite(c.dense_margin) and math.isfinite(c.dense_z) for c in result.chunks)
    assert result.chunks[0].chunk_id == "c0" and isinstance(result.chunks[0].chunk, Chunk)
    assert [c.fused_score for c in result.chunks] == sorted((c.fused_score for c in result.chunks), reverse=True)
    # The default threshold (dense_margin 0.023) keeps only what is closer than the reference passages.
    strict = _retriever(world, dense_top_k=2, bm25_top_k=3).run("t5 t0", top_k=10)
    assert [c.chunk_id for c in strict.chunks] == ["c0"] and len(strict.below_threshold) == 2 and not strict.note


def test_pipeline_notes_and_the_one_cleaning_rule(world) -> None:
    retriever = _retriever(world)
    assert retriever.run(" \x00\u200b ").note == "empty query"
    assert clean_query("pay\u200bday\x85 ＡＢＣ\x1b[31m", 100) == "payday ABC [31m"
    _, _, bm25, _ = world
    bm25.docs.clear()
    assert retriever.run("alpha t1").note == "the knowledge base is empty"


def test_settings_and_reranker_can_be_swapped_while_serving(world) -> None:
    retriever = _retriever(world, reranker=LengthScorer(), threshold=ThresholdSettings(score="none"))
    assert retriever.reranker is None and retriever.rerank is None  # reranker given but not enabled
    retriever.settings = RetrievalSettings(
        reranker=RerankerSettings(enabled=True, model="fake", max_candidates=2),
        threshold=ThresholdSettings(score="none"),
        fusion=FusionSettings(method="rrf"),
    )
    assert retriever.rerank is None and retriever.fusion.settings.method == "rrf"
    scorer = LengthScorer()
    retriever.reranker = scorer
    result = retriever.run("alpha t1", top_k=10)
    assert "rerank" in result.timings_ms and len(scorer.seen[0]) == 2
    assert sum(c.rerank_score is not None for c in result.chunks) == 2
    variant = retriever.variant(RetrievalSettings(threshold=ThresholdSettings(score="none")), None)
    assert variant.rerank is None and variant.calibration is not retriever.calibration
    assert [c.chunk_id for c in variant.run("alpha t1", top_k=3).chunks]


def _calibration(**changes: object) -> KnowledgeBaseCalibration:
    values: dict[str, object] = dict(
        weights={"dense_score": 1.0, "bm25_coverage": 1.0}, min_value=1.2, fusion=None,
        computed_at="2026-12-03T00:00:00+00:00", seconds=1.0, chunks=10, probes=30, probe_kind="test", offtopic=20,
        keep_target=0.95, probes_answered=0.95, offtopic_refused=0.9, holes_refused=0.5, auc=0.9,
    )
    values.update(changes)
    return KnowledgeBaseCalibration(**values)  # type: ignore[arg-type]


def test_a_knowledge_base_calibration_replaces_the_fallback_threshold_and_fusion(world) -> None:
    embedder, _, _, _ = world
    embedder.queries["t5 t0"] = _axis(0)
    retriever = _retriever(world, dense_top_k=2, bm25_top_k=3)
    assert retriever.threshold.describe() == "dense_margin >= 0.023 (fallback)"
    retriever.kb_calibration = _calibration()
    result = retriever.run("t5 t0", top_k=10)
    # relevance = cosine + coverage (TermCountIndex: matched tokens / query tokens).
    by_id = {c.chunk_id: c for c in result.chunks + result.below_threshold}
    assert by_id["c0"].bm25_coverage == pytest.approx(0.5) and by_id["c0"].relevance == pytest.approx(1.5, abs=1e-5)
    assert [c.chunk_id for c in result.chunks] == ["c0"]  # c5: 0 + 0.5, c7: ~1 + 0 < 1.2
    assert "(calibrated)" in retriever.threshold.describe()
    # Its fusion too: BM25 alone ranks c5 before c7, which has no BM25 score.
    retriever.kb_calibration = _calibration(min_value=-1.0, fusion=FusionSettings(dense_weight=0.0))
    assert [c.chunk_id for c in retriever.run("t5 t0", top_k=10).chunks][:2] == ["c0", "c5"]
    # Switched off in the settings: the configured threshold and fusion again.
    off = _retriever(world, dense_top_k=2, bm25_top_k=3,
                     threshold=ThresholdSettings(per_knowledge_base=False),
                     fusion=FusionSettings(per_knowledge_base=False))
    off.kb_calibration = _calibration(fusion=FusionSettings(dense_weight=0.0))
    assert off.threshold.describe() == "dense_margin >= 0.023 (fallback)" and off.fusion.settings.dense_weight == 1.0


def test_a_stored_calibration_round_trips_and_a_broken_file_is_ignored(tmp_path: Path) -> None:
    cal = _calibration(fusion=FusionSettings(bm25_weight=0.5))
    cal.save(tmp_path / "calibration.json")
    assert KnowledgeBaseCalibration.load(tmp_path / "calibration.json") == cal
    assert KnowledgeBaseCalibration.load(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text('{"weights": ', encoding="utf-8")
    assert KnowledgeBaseCalibration.load(tmp_path / "broken.json") is None
    assert cal.summary()["fusion"] == "weighted_sum, dense 1 / bm25 0.5"
