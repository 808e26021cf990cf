"""rag-eval on real components (e5, Milvus Lite, BM25) over small BEIR folders made here, plus the
calibration and fusion-tuning arithmetic on hand-made candidates."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from rag_app.evaluation.beir_eval import (
    Candidate,
    CandidateSet,
    QueryCandidates,
    by_fused_score,
    collect_candidates,
    fused_order,
)
from rag_app.evaluation.calibration import auc, calibrate, calibrate_stage, recommend_cutoff
from rag_app.evaluation.fusion_tuning import FusionSetting, setting_run, tune, within_depth

EN_DOCS = {
    "en1": ("Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts."),
    "en2": ("Volcanoes", "Magma rises through the crust and erupts as lava, ash and volcanic gases."),
    "en3": ("Vaccines", "A vaccine trains the immune system to recognise a pathogen by presenting a harmless antigen."),
    "en4": ("Tides", "Ocean tides are caused mainly by the gravitational pull of the moon on the rotating earth."),
    "en5": ("Insulin", "Insulin is a hormone made by the pancreas that lets cells absorb glucose from the blood."),
    "en6": ("Bread", "Yeast ferments sugars in dough, releasing carbon dioxide that makes bread rise."),
}
EN_QUERIES = {
    "q1": ("How do plants make glucose from sunlight?", "en1"),
    "q2": ("What causes ocean tides?", "en4"),
    "q3": ("Which organ produces insulin?", "en5"),
    "q4": ("Why does bread dough rise?", "en6"),
}
ZH_DOCS = {
    "zh1": ("长城", "长城是中国古代为防御北方游牧民族而修建的军事工程，全长两万多公里。"),
    "zh2": ("熊猫", "大熊猫主要生活在四川的竹林中，以竹子为主要食物。"),
    "zh3": ("茶叶", "绿茶不经过发酵，红茶经过完全发酵，乌龙茶属于半发酵茶。"),
    "zh4": ("高铁", "京沪高速铁路连接北京和上海，列车最高运营时速为三百五十公里。"),
}
ZH_QUERIES = {
    "z1": ("大熊猫主要吃什么？", "zh2"),
    "z2": ("京沪高铁的最高时速是多少？", "zh4"),
    "z3": ("哪种茶是半发酵的？", "zh3"),
}


def write_beir(folder: Path, docs: dict, queries: dict) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for did, (title, text) in docs.items():
            fh.write(json.dumps({"_id": did, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, (text, _) in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{qid}\t{did}\t1" for qid, (_, did) in queries.items()]
    (folder / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def beir_sets(tmp_path: Path) -> tuple[Path, Path]:
    return write_beir(tmp_path / "tiny-en", EN_DOCS, EN_QUERIES), write_beir(tmp_path / "tiny-zh", ZH_DOCS, ZH_QUERIES)


# --------------------------------------------------------------------------- the command, end to end


def test_rag_eval_end_to_end_with_calibration_and_cache(
    beir_sets, tmp_path: Path, e5_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rag_app.cli.evaluate import main as eval_main

    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    en, zh = beir_sets
    args = [str(en), str(zh), "--data-dir", str(tmp_path / "data"), "--calibrate", "--tune-fusion",
            "--plot-dir", str(tmp_path / "plots"), "--json", str(tmp_path / "eval.json")]
    assert eval_main(args) == 0
    out = capsys.readouterr().out
    assert "| tiny-en | hybrid |" in out and "| tiny-zh | bm25 |" in out
    assert "recommended threshold {score: dense_margin" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    for name in ("tiny-en", "tiny-zh"):
        legs = report["sets"][name]["legs"]
        # The relevant document of each of these distinct questions is found in the top 10.
        assert legs["hybrid"]["recall@10"] == 1.0
        assert 0.5 < legs["hybrid"]["ndcg@10"] <= 1.0
        png = tmp_path / "plots" / f"calibration-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        stages = {c["stage"]: c for c in report["sets"][name]["calibration"]}
        assert set(stages) == {"dense_cosine", "dense_margin", "dense_z", "bm25", "fused"}
        # The other set's questions are in another language and topic: dense_margin separates them.
        assert stages["dense_margin"]["separation_auc"] > 0.9
        assert stages["dense_margin"]["ood_questions"] == len(EN_QUERIES if name == "tiny-zh" else ZH_QUERIES)
    assert report["fusion"], "the fusion grid was scored"

    # A second run reuses the cached candidates: no knowledge base is opened, same numbers.
    import rag_app.cli.evaluate as cli

    monkeypatch.setattr(cli, "open_service", None)  # would raise if the run tried to open one
    assert eval_main(args[:2] + ["--data-dir", str(tmp_path / "data"), "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["sets"]["tiny-en"]["legs"]["hybrid"] == report["sets"]["tiny-en"]["legs"]["hybrid"]


def test_rag_eval_rejects_a_folder_that_is_not_beir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rag_app.cli.evaluate import main as eval_main

    assert eval_main([str(tmp_path), "--data-dir", str(tmp_path / "d")]) == 1
    assert "not a BEIR folder" in capsys.readouterr().err


def test_offline_refusion_reproduces_the_retrievers_order(beir_sets, make_kb) -> None:
    """Fusion tuning replays fusion on cached candidates: it must equal what the retriever does."""
    from ingest.beir import iter_corpus
    from rag_app.config import FusionSettings, RetrievalSettings

    en, _ = beir_sets
    for fusion in (FusionSettings(method="rrf", rrf_k=20, dense_weight=0.5), FusionSettings(method="weighted_sum", bm25_weight=0.75)):
        kb = make_kb(retrieval=RetrievalSettings(fusion=fusion))
        kb.indexer.ingest_documents(iter_corpus(en))
        cands = collect_candidates(kb, en, depth=10)
        setting = FusionSetting(fusion.method, fusion.dense_weight, fusion.bm25_weight, 10, fusion.rrf_k)
        for q in cands.queries:
            replay = fused_order(within_depth(q.chunks, 10), setting.method, setting.dense_weight,
                                 setting.bm25_weight, setting.rrf_k)
            assert [c.chunk_id for c in replay] == [c.chunk_id for c in by_fused_score(q.chunks)], fusion.method
        assert setting_run(cands, setting).keys() == {q.qid for q in cands.queries}


# --------------------------------------------------------------------------- arithmetic on hand-made data


def _c(cid: str, doc: str, margin: float, fused: float, dr: int | None = 1, br: int | None = 1) -> Candidate:
    return Candidate(cid, doc, dr, br, 0.8 + margin, 1.0, fused, dense_margin=margin, dense_z=margin * 10)


def test_candidate_set_round_trips_through_json_with_nan_and_none(tmp_path: Path) -> None:
    chunks = [Candidate("c", "d", None, 2, math.nan, 1.5, 0.1, 0.02, math.nan, None),
              Candidate("e", "f", 1, None, 0.9, 0.0, 0.2, 0.05, 1.2, -3.5, 0.25)]
    cs = CandidateSet("set", [QueryCandidates("q", chunks, 12.5)], {"q": {"d": 1}}, depth=30)
    cs.save(tmp_path / "c.json")
    back = CandidateSet.load(tmp_path / "c.json")
    assert back.dataset == "set" and back.depth == 30 and back.qrels == {"q": {"d": 1}}
    a, b = back.queries[0].chunks
    assert math.isnan(a.dense_score) and a.rerank_score is None and a.dense_rank is None
    assert math.isnan(a.bm25_coverage)
    assert b == chunks[1] and back.reranked


def test_recommended_cutoff_keeps_at_least_the_target() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 7, 100, 1001):
        values = rng.normal(size=n)
        for keep in (0.5, 0.9, 0.95, 1.0):
            t = recommend_cutoff(values, keep)
            assert np.mean(values >= t) >= keep
            # ...and it is the largest such cutoff: the next larger value would fall short.
            above = np.sort(values)[np.sort(values) > t]
            if above.size:
                assert np.mean(values >= above[0]) < keep
    assert math.isnan(recommend_cutoff(np.array([]), 0.9))


def test_auc_matches_brute_force() -> None:
    rng = random.Random(3)
    pos = np.array([rng.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(40)])
    neg = np.array([rng.choice([0.0, 0.2, 0.3]) for _ in range(30)])
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc(pos, neg) == pytest.approx(brute)


def test_calibration_numbers_on_hand_made_candidates() -> None:
    # 4 in-domain questions; best relevant margins 0.10, 0.06, 0.04, 0.01. q4's relevant chunk is
    # ranked 6th by fusion, below 5 irrelevant ones, so the answer set (top 5) misses it.
    qs = [
        QueryCandidates("q1", [_c("a", "A", 0.10, 0.9), _c("b", "B", 0.00, 0.5)], 1.0),
        QueryCandidates("q2", [_c("c", "C", 0.06, 0.9)], 1.0),
        QueryCandidates("q3", [_c("d", "D", 0.04, 0.9), _c("e", "E", 0.05, 0.95)], 1.0),
        QueryCandidates("q4", [_c(f"x{i}", f"X{i}", 0.03, 0.9 - i * 0.01) for i in range(5)] + [_c("f", "F", 0.01, 0.1)], 1.0),
    ]
    qrels = {"q1": {"A": 1}, "q2": {"C": 1}, "q3": {"D": 1}, "q4": {"F": 1}}
    cands = CandidateSet("hand", qs, qrels, depth=10)
    ood = CandidateSet("ood", [
        QueryCandidates("o1", [_c("p", "P", 0.02, 0.9)], 1.0),
        QueryCandidates("o2", [_c("r", "R", 0.05, 0.9)], 1.0),
        QueryCandidates("o3", [], 1.0),  # nothing retrieved: refused whatever the cutoff
    ], {}, depth=10)
    cal, raw = calibrate_stage("dense_margin", cands, ood, keep=0.75, depth=10, top_k=5)
    assert cal.cutoff == pytest.approx(0.04)  # keeps 3 of 4 best-relevant values
    assert cal.relevant_kept == pytest.approx(0.75) and cal.questions == 4
    assert cal.answer_set_relevant_unthresholded == pytest.approx(0.75)  # q4 misses without a cutoff
    assert cal.answer_set_relevant == pytest.approx(0.75)  # q1, q2, q3 keep theirs; q4 is refused
    assert cal.in_domain_answered == pytest.approx(0.75)
    assert cal.ood_refused == pytest.approx(2 / 3)  # o1 (0.02) and o3 refused, o2 (0.05) kept
    # Pairs (in-domain best relevant > OOD best): 0.10 and 0.06 beat all 3, 0.04 beats 2, 0.01 beats 1.
    assert cal.separation_auc == pytest.approx(9 / 12)
    # A fixed cutoff is scored as given.
    fixed, _ = calibrate_stage("dense_margin", cands, ood, keep=0.75, depth=10, top_k=5, cutoff=0.0)
    assert fixed.relevant_kept == 1.0 and fixed.ood_refused == pytest.approx(1 / 3)
    # depth limits the candidates seen: at depth 0 nothing is retrieved, every question refused.
    empty, _ = calibrate_stage("dense_margin", cands, ood, keep=0.75, depth=0, top_k=5, cutoff=0.0)
    assert empty.in_domain_answered == 0.0 and empty.ood_refused == 1.0
    names = [c.stage for c in calibrate(cands, ood, keep=0.75, depth=10)[0]]
    assert "rerank" not in names and "dense_margin" in names


def test_fusion_tuning_prefers_a_setting_that_helps_every_set() -> None:
    """Two sets: on each, one leg alone misses the relevant doc at rank 1; equal-weight fusion of
    both legs puts it first on both sets, so it must come out on top of the grid."""

    def query(qid: str) -> QueryCandidates:
        # Relevant R is 2nd in both legs; each leg's 1st is an irrelevant doc the other leg missed.
        rel = Candidate(f"{qid}r", "R", 2, 2, 0.8, 5.0, 0.0)
        x = Candidate(f"{qid}x", "X", 1, None, 0.9, 0.0, 0.0)
        y = Candidate(f"{qid}y", "Y", None, 1, 0.1, 9.0, 0.0)
        return QueryCandidates(qid, [rel, x, y], 1.0)

    sets = [
        CandidateSet(name, [query(f"{name}{i}") for i in range(6)], {f"{name}{i}": {"R": 1} for i in range(6)}, depth=50)
        for name in ("s1", "s2")
    ]
    grid = [FusionSetting("rrf", 1.0, 1.0, 50), FusionSetting("rrf", 1.0, 0.0, 50), FusionSetting("rrf", 0.0, 1.0, 50)]
    results = tune(sets, grid)
    assert results[0].setting == grid[0]
    assert all(g[0] > 0 for g in results[0].gain.values())
    assert results[0].worst_gain > results[-1].worst_gain


def test_rerank_leg_and_stage_with_tiny_random_cross_encoder(beir_sets, make_kb, tiny_random_cross_encoder) -> None:
    """With a reranker configured, evaluation adds the ``hybrid+rerank`` ranking and the
    calibration a ``rerank`` stage (a random model: proves the wiring, not quality)."""
    from ingest.beir import iter_corpus
    from rag_app.config import RerankerSettings, RetrievalSettings
    from rag_app.evaluation.beir_eval import RERANK_LEG, evaluate_candidates

    en, _ = beir_sets
    reranker = RerankerSettings(enabled=True, model=str(tiny_random_cross_encoder), max_candidates=4, max_tokens=64)
    kb = make_kb(retrieval=RetrievalSettings(reranker=reranker))
    kb.indexer.ingest_documents(iter_corpus(en))
    cands = collect_candidates(kb, en, depth=10)
    assert cands.reranked
    for q in cands.queries:
        head = q.chunks[:4]
        assert all(c.rerank_score is not None for c in head)
        assert [c.rerank_score for c in head] == sorted((c.rerank_score for c in head), reverse=True)
    metrics = evaluate_candidates(cands)
    assert set(metrics) == {"dense", "bm25", "hybrid", RERANK_LEG}
    stages = [c.stage for c in calibrate(cands, None, depth=10)[0]]
    assert "rerank" in stages
