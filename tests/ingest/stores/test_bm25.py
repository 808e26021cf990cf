"""BM25 index and tokenizer: oracle tests against rank_bm25.BM25Okapi on identical tokens (its own
idf for ``idf="okapi"``; for ``idf="lucene"``, the default, the same class with Lucene's idf)."""
from __future__ import annotations

import math
import os
import random
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from ingest.files import is_temp_name
from ingest.stores import bm25_index as bm25_mod
from ingest.stores.bm25_index import BM25Index
from ingest.text_tokenizer import BM25Tokenizer

RTOL, ATOL = 1e-6, 1e-9


# ---------------------------------------------------------------------------- helpers


class LuceneIdfBM25(BM25Okapi):
    """rank_bm25's BM25Okapi scoring with Lucene's (and Milvus's) idf: the oracle of ``idf="lucene"``."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def _oracle(idx: BM25Index, docs: list[list[str]]) -> BM25Okapi:
    """rank_bm25 over ``docs`` with ``idx``'s parameters and idf."""
    if idx.idf == "okapi":
        return BM25Okapi(docs, k1=idx.k1, b=idx.b, epsilon=idx.epsilon)
    return LuceneIdfBM25(docs, k1=idx.k1, b=idx.b)


def _zipf_corpus(rng: np.random.Generator, n_docs: int, vocab: int, lo: int, hi: int) -> list[list[str]]:
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    lens = rng.integers(lo, hi + 1, n_docs)
    return [[f"t{j}" for j in rng.choice(vocab, size=n, p=p)] for n in lens]


def _check_against_oracle(
    idx: BM25Index, ids: list[str], docs: list[list[str]], queries: list[list[str]], k: int = 10
) -> None:
    """``idx`` must score exactly like its rank_bm25 oracle over docs; ids[i] names docs[i] in insertion order."""
    assert len(idx) == len(ids) and idx.ids() == set(ids)
    if not ids:
        for q in queries:
            assert idx.search(q, k) == []
        return
    ref = _oracle(idx, docs)
    doc_sets = [set(d) for d in docs]
    for q in queries:
        expected = np.asarray(ref.get_scores(q))
        got = idx.get_scores(q, ids)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)

        # Reference ranking: only docs containing a query term, score desc, insertion order.
        qs = set(q)
        matching = [i for i in range(len(docs)) if doc_sets[i] & qs]
        ref_top = sorted(matching, key=lambda i: (-expected[i], i))[:k]
        res = idx.search(q, k)
        assert len(res) == len(ref_top)
        got_scores = np.array([s for _, s in res])
        np.testing.assert_allclose(got_scores, expected[ref_top], rtol=RTOL, atol=ATOL)
        assert all(got_scores[i] >= got_scores[i + 1] for i in range(len(res) - 1))
        got_ids = [c for c, _ in res]
        if res:
            # Ids must agree except among (float-)ties at the cut-off; with exact ties the
            # index breaks them by insertion order, like the reference sort above.
            kth = expected[ref_top[-1]]
            tol = ATOL + RTOL * abs(kth)
            strict_ref = {ids[i] for i in ref_top if expected[i] > kth + tol}
            strict_got = {c for c, s in res if s > kth + tol}
            assert strict_ref == strict_got
            if len(set(np.round(expected[ref_top], 9))) == len(ref_top):  # no ties at all
                assert got_ids == [ids[i] for i in ref_top]


def _queries(rng: random.Random, vocab: list[str], n: int) -> list[list[str]]:
    out = []
    for _ in range(n):
        q = [rng.choice(vocab) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.3:
            q.append(q[0])  # repeated query token: rank_bm25 counts it twice
        if rng.random() < 0.2:
            q.append("never-indexed")
        out.append(q)
    return out


# ---------------------------------------------------------------------------- oracle tests


@pytest.mark.parametrize("idf", ["lucene", "okapi"])
def test_random_zipf_corpus_matches_rank_bm25(idf: str) -> None:
    rng = np.random.default_rng(7)
    docs = _zipf_corpus(rng, 1500, 800, 5, 60)
    ids = [f"c{i:05d}" for i in range(len(docs))]
    idx = BM25Index(idf=idf)
    for s in range(0, len(docs), 97):  # several batches: exercises segment merging
        idx.add(ids[s : s + 97], docs[s : s + 97])
    assert idx.stats()["segments"] <= 16
    vocab = sorted({t for d in docs for t in d})
    _check_against_oracle(idx, ids, docs, _queries(random.Random(1), vocab, 40))


def test_top10_identical_to_get_top_n_on_distinct_scores() -> None:
    rng = np.random.default_rng(3)
    docs = _zipf_corpus(rng, 600, 300, 10, 40)
    ids = [str(i) for i in range(len(docs))]
    idx = BM25Index()
    idx.add(ids, docs)
    ref = _oracle(idx, docs)
    for q in (["t5", "t17", "t120"], ["t40", "t41"], ["t2", "t250", "t9", "t9"]):
        scores = ref.get_scores(q)
        top = ref.get_top_n(q, ids, n=10)
        if len({round(scores[int(i)], 9) for i in top}) < 10:
            continue  # ties: rank_bm25's argsort order is unspecified
        assert [c for c, _ in idx.search(q, 10)] == top


word = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.lists(word, min_size=0, max_size=12), min_size=1, max_size=25).filter(
        lambda ds: any(ds)  # rank_bm25 divides by zero on an all-empty corpus
    ),
    queries=st.lists(st.lists(word, min_size=1, max_size=5), min_size=1, max_size=4),
    batch=st.integers(1, 6),
    idf=st.sampled_from(["okapi", "lucene"]),
)
def test_hypothesis_tiny_corpora_negative_idf(docs, queries, batch, idf) -> None:
    # Tiny vocabularies make df > N/2 common, so okapi's idf goes negative and the epsilon floor
    # (itself negative when the mean idf is) is exercised; Lucene's idf stays positive.
    ids = [f"d{i}" for i in range(len(docs))]
    idx = BM25Index(idf=idf)
    for s in range(0, len(docs), batch):
        idx.add(ids[s : s + batch], docs[s : s + batch])
    _check_against_oracle(idx, ids, docs, queries)


def test_single_document_negative_scores() -> None:
    idx = BM25Index(idf="okapi")  # only rank_bm25's idf goes negative
    idx.add(["only"], [["x", "y", "x"]])
    ref = BM25Okapi([["x", "y", "x"]])
    np.testing.assert_allclose(idx.get_scores(["x"], ["only"]), ref.get_scores(["x"]), rtol=RTOL)
    res = idx.search(["x"], 5)
    assert [c for c, _ in res] == ["only"] and res[0][1] < 0  # epsilon * negative mean idf
    assert idx.search(["z"], 5) == []


@pytest.mark.parametrize("tiny_merge_limits", [False, True], ids=["default-limits", "tiny-merge-limits"])
def test_add_delete_replace_sequences_match_rebuilt_oracle(monkeypatch, tiny_merge_limits: bool) -> None:
    if tiny_merge_limits:  # blocked merge placement, the segment size cap and its MAX_SEGMENTS escape
        monkeypatch.setattr(bm25_mod, "MERGE_BLOCK_POSTINGS", 5)
        monkeypatch.setattr(bm25_mod, "MAX_SEGMENT_POSTINGS", 300)
        monkeypatch.setattr(bm25_mod, "MAX_SEGMENTS", 3)
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(60)]

    def doc() -> list[str]:
        return [rng.choice(vocab[: rng.randint(5, 60)]) for _ in range(rng.randint(0, 25))]

    model: dict[str, list[str]] = {}  # insertion order == index slot order (replace moves to end)
    calls = {"compact": 0, "merge": 0}

    class CountingIndex(BM25Index):
        """Counts maintenance work so the test proves it was exercised."""

        def _compact(self, *a, **kw):
            calls["compact"] += 1
            return super()._compact(*a, **kw)

        def _merge(self, *a, **kw):
            calls["merge"] += 1
            out = super()._merge(*a, **kw)
            if len(a[0]) >= 2:  # a merge of several segments respects the cap
                assert out.nnz <= bm25_mod.MAX_SEGMENT_POSTINGS
            return out

    idx = CountingIndex()
    next_id = 0
    for step in range(120):
        op = rng.random()
        if op < 0.5 or not model:
            n = rng.randint(1, 20)
            new_ids = [f"id{next_id + i}" for i in range(n)]
            next_id += n
            docs = [doc() for _ in new_ids]
            idx.add(new_ids, docs)
            model.update(zip(new_ids, docs))
        elif op < 0.75:
            victims = rng.sample(sorted(model), k=min(len(model), rng.randint(1, 12)))
            removed = idx.delete(victims + ["unknown-id"])
            assert removed == len(victims)
            for v in victims:
                del model[v]
        else:
            targets = rng.sample(sorted(model), k=min(len(model), rng.randint(1, 8)))
            docs = [doc() for _ in targets]
            idx.add(targets, docs)
            for t, d in zip(targets, docs):
                del model[t]
                model[t] = d
        if step % 10 == 9 and any(model.values()):
            _check_against_oracle(idx, list(model), list(model.values()), _queries(rng, vocab, 8))
        assert idx.stats()["tombstones"] <= 0.2 * idx.stats()["slots"] + 1e-9
    assert calls["compact"] > 0 and calls["merge"] > 0
    if tiny_merge_limits:
        assert idx.stats()["segments"] > bm25_mod.MAX_SEGMENTS  # full segments beyond the count cap


def test_repeated_query_scores_once_and_never_goes_stale(tmp_path) -> None:
    """The retriever's search() + get_scores() on one query score the index once; any change to
    the index (add, delete, replace, another process's save) is seen by the very next call."""
    writer = BM25Index(tmp_path / "bm25")
    writer.add(["a", "b"], [["apple", "pie"], ["banana"]])
    writer.save()
    passes = {"n": 0}

    class CountingIndex(BM25Index):
        def _score_all(self, query_tokens):
            passes["n"] += 1
            return super()._score_all(query_tokens)

    reader = CountingIndex(tmp_path / "bm25")
    q = ["apple", "banana", "apple"]
    first = reader.search(q, 5)
    np.testing.assert_allclose(reader.get_scores(q, [c for c, _ in first]), [s for _, s in first])
    assert passes["n"] == 1

    def expect(idx: BM25Index, docs: dict[str, list[str]]) -> None:
        ids = list(docs)
        ref = _oracle(idx, list(docs.values()))
        np.testing.assert_allclose(idx.get_scores(q, ids), ref.get_scores(q), rtol=RTOL, atol=ATOL)
        assert {c for c, _ in idx.search(q, 5)} == {c for c, d in docs.items() if set(d) & set(q)}

    docs = {"a": ["apple", "pie"], "b": ["banana"], "c": ["apple", "apple", "tart"]}
    reader.add(["c"], [docs["c"]])
    expect(reader, docs)
    reader.delete(["a"])
    del docs["a"]
    expect(reader, docs)
    reader.add(["b"], [["cherry"]])  # replace: b no longer matches
    docs["b"] = ["cherry"]
    expect(reader, docs)
    with pytest.raises(TypeError):
        reader.add([1], [["apple"]])  # a refused add leaves the cached scores valid
    expect(reader, docs)

    # A second process's save reaches a reader that has nothing unsaved of its own.
    follower = BM25Index(tmp_path / "bm25")
    assert [c for c, _ in follower.search(q, 5)] == ["a", "b"]
    writer.add(["d"], [["banana", "banana", "split"]])
    writer.delete(["a"])
    writer.save()
    follower.refresh()
    expect(follower, {"b": ["banana"], "d": ["banana", "banana", "split"]})


def test_many_segments_cap_and_split_bulk_add(monkeypatch) -> None:
    # Tiny sub-batches and no binary-counter merging: segments pile up to the MAX_SEGMENTS
    # cap, so queries span many segments and the cap-merge path (dropping dead postings) runs.
    monkeypatch.setattr(bm25_mod, "MAX_BATCH_TOKENS", 150)
    monkeypatch.setattr(bm25_mod, "MERGE_FACTOR", 0)
    rng = np.random.default_rng(21)
    docs = _zipf_corpus(rng, 500, 200, 0, 30)
    ids = [f"s{i}" for i in range(len(docs))]
    idx = BM25Index()
    idx.add(ids, docs)
    assert idx.stats()["segments"] == bm25_mod.MAX_SEGMENTS
    queries = _queries(random.Random(5), [f"t{i}" for i in range(200)], 10)
    _check_against_oracle(idx, ids, docs, queries)
    idx.delete(ids[::9])  # ~11% tombstones: below the compaction threshold
    idx.add(["late"], [["t1", "t3"]])
    assert idx.stats()["tombstones"] > 0
    keep = [i for i in range(len(docs)) if i % 9]
    _check_against_oracle(
        idx, [ids[i] for i in keep] + ["late"], [docs[i] for i in keep] + [["t1", "t3"]], queries
    )


def test_duplicate_ids_within_batch_last_wins() -> None:
    idx = BM25Index()
    idx.add(["a", "b", "a"], [["x"], ["y"], ["z", "z"]])
    assert len(idx) == 2 and idx.ids() == {"a", "b"}
    assert idx.search(["x"], 5) == []
    assert [c for c, _ in idx.search(["z"], 5)] == ["a"]
    _check_against_oracle(idx, ["b", "a"], [["y"], ["z", "z"]], [["z", "y"]])


def test_delete_everything_and_reuse() -> None:
    idx = BM25Index()
    idx.add(["a", "b"], [["x", "y"], ["y"]])
    assert idx.delete(["a", "b", "a"]) == 2
    assert len(idx) == 0 and idx.search(["y"], 3) == []
    assert idx.delete(["a"]) == 0
    idx.add(["c"], [["y", "q"]])
    _check_against_oracle(idx, ["c"], [["y", "q"]], [["y"], ["q", "x"]])


def test_edge_cases() -> None:
    idx = BM25Index()
    assert idx.search(["a"], 10) == [] and len(idx) == 0
    idx.add([], [])
    with pytest.raises(ValueError):
        idx.add(["a"], [])
    idx.add(["e1", "e2", "full"], [[], [], ["a", "b"]])  # empty docs count in N and avgdl
    _check_against_oracle(idx, ["e1", "e2", "full"], [[], [], ["a", "b"]], [["a"], ["b", "c"]])
    assert idx.search(["a"], 0) == []
    assert idx.search([], 5) == []
    np.testing.assert_array_equal(idx.get_scores(["a"], ["nope", "e1"]), [0.0, 0.0])
    assert "full" in idx and "nope" not in idx


def test_bad_input_leaves_index_unchanged() -> None:
    idx = BM25Index()
    idx.add(["a", "b"], [["x", "y"], ["y"]])
    with pytest.raises(TypeError):
        idx.add(["a", "c"], [["z"], ["q", 3]])  # non-str token
    with pytest.raises(TypeError):
        idx.add(["a"], ["raw text"])  # forgot to tokenize
    with pytest.raises(TypeError):
        idx.add([1], [["x"]])  # type: ignore[list-item]
    _check_against_oracle(idx, ["a", "b"], [["x", "y"], ["y"]], [["x"], ["y", "z"]])


def test_large_term_frequency_uses_wide_dtype() -> None:
    idx = BM25Index()
    docs = [["x"] * 70_000 + ["y"], ["y", "z"], ["z"]]
    idx.add(["big", "s1", "s2"], docs)
    _check_against_oracle(idx, ["big", "s1", "s2"], docs, [["x"], ["y", "x"]])


# ---------------------------------------------------------------------------- persistence


def _build(rng_seed: int, n: int) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(rng_seed)
    docs = _zipf_corpus(rng, n, 400, 3, 40)
    return [f"h{rng_seed}-{i}" for i in range(n)], docs


def test_save_load_roundtrip(tmp_path) -> None:
    ids, docs = _build(5, 400)
    d = tmp_path / "bm25"
    idx = BM25Index(d, k1=1.2, b=0.7, epsilon=0.3)
    for s in range(0, 400, 50):
        idx.add(ids[s : s + 50], docs[s : s + 50])
    idx.delete(ids[:30])
    idx.save()
    queries = _queries(random.Random(2), [f"t{i}" for i in range(50)], 15)
    before = [idx.get_scores(q, ids) for q in queries]
    top_before = [idx.search(q, 10) for q in queries]

    loaded = BM25Index(d, k1=1.2, b=0.7, epsilon=0.3)
    assert loaded.ids() == idx.ids() and len(loaded) == 370
    for q, sc, top in zip(queries, before, top_before):
        np.testing.assert_array_equal(loaded.get_scores(q, ids), sc)  # bit-identical
        assert loaded.search(q, 10) == top
    # no pickles anywhere: every array file must load with allow_pickle=False
    for f in os.listdir(d):
        if f.endswith(".npz"):
            np.load(d / f, allow_pickle=False).close()

    # incremental save after more mutations, including a compaction; stale files removed
    loaded.delete(ids[30:150])
    loaded.add(["new"], [["t1", "t2", "t1"]])
    loaded.close()
    with pytest.raises(RuntimeError):
        loaded.search(["t1"], 3)
    again = BM25Index(d, k1=1.2, b=0.7, epsilon=0.3)
    keep = ids[150:] + ["new"]
    _check_against_oracle(again, keep, docs[150:] + [["t1", "t2", "t1"]], queries[:5])
    import json

    manifest = json.loads((d / "manifest.json").read_text())
    referenced = set(manifest["segments"]) | {manifest["docs"], "manifest.json"}
    referenced |= {p["file"] for p in manifest["ids"] + manifest["vocab"]}
    assert set(os.listdir(d)) == referenced


def test_crash_during_save_keeps_previous_state(tmp_path, monkeypatch) -> None:
    ids, docs = _build(9, 200)
    d = tmp_path / "bm25"
    idx = BM25Index(d)
    idx.add(ids[:100], docs[:100])
    idx.save()
    idx.add(ids[100:], docs[100:])
    idx.delete(ids[:10])
    (d / ".seg-00000009.npz.0badc0de.tmp").write_bytes(b"half")  # an earlier save killed mid-write

    real = bm25_mod._write_json

    def failing(path, obj):
        if path.name == "manifest.json":
            raise OSError("disk full")
        real(path, obj)

    monkeypatch.setattr(bm25_mod, "_write_json", failing)
    with pytest.raises(OSError):
        idx.save()
    monkeypatch.setattr(bm25_mod, "_write_json", real)

    old = BM25Index(d)  # previous consistent generation
    _check_against_oracle(old, ids[:100], docs[:100], [["t1", "t3"], ["t7"]])
    idx.save()  # retry succeeds and garbage-collects the orphans of the failed attempt
    new = BM25Index(d)
    _check_against_oracle(new, ids[10:], docs[10:], [["t1", "t3"], ["t7"]])
    assert not [f for f in os.listdir(d) if f.startswith(".tmp-") or is_temp_name(f)]


def test_in_memory_save_is_noop() -> None:
    idx = BM25Index()
    idx.add(["a"], [["x"]])
    idx.save()
    idx.flush()
    idx.close()


# ---------------------------------------------------------------------------- concurrency


def test_concurrent_add_and_search() -> None:
    ids, docs = _build(4, 600)
    idx = BM25Index()
    idx.add(ids[:100], docs[:100])
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for s in range(100, 600, 25):
                idx.add(ids[s : s + 25], docs[s : s + 25])
                idx.delete(ids[s - 100 : s - 90])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(200):
                for cid, score in idx.search(["t1", "t5", "t30"], 10):
                    assert isinstance(cid, str) and np.isfinite(score)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    remaining = [i for i in ids if i in idx]
    by_id = dict(zip(ids, docs))
    _check_against_oracle(idx, remaining, [by_id[i] for i in remaining], [["t1", "t5", "t30"]])


# ---------------------------------------------------------------------------- tokenizer + Chinese


@pytest.fixture(scope="module")
def tok() -> BM25Tokenizer:
    return BM25Tokenizer()


def test_tokenizer_normalises_full_width(tok) -> None:
    assert tok.tokenize("ＡＢＣ，ｄｅｆ！１２３") == ["abc", "def", "123"]
    assert tok.tokenize("ＡＢＣ，ｄｅｆ！１２３") == tok.tokenize("abc, def! 123")


def test_tokenizer_stemming_and_stopwords(tok) -> None:
    assert tok.tokenize("Running") == ["run"]
    assert tok.tokenize("the cats are running quickly") == ["cat", "run", "quick"]
    assert BM25Tokenizer(stem_english=False).tokenize("running cats") == ["running", "cats"]
    assert BM25Tokenizer(stopwords=False).tokenize("the cat") == ["the", "cat"]
    assert "的" not in tok.tokenize("我的文档是什么")
    assert tok.tokenize("请问报销流程是什么？") == ["报销", "流程"]


def test_tokenizer_mixed_and_degenerate_input(tok) -> None:
    toks = tok.tokenize("使用RAG系统检索Documents，版本v2.0共3个")
    assert {"使用", "rag", "系统", "检索", "document", "3"} <= set(toks)
    assert tok.tokenize("") == []
    assert tok.tokenize("，。！？、 ...") == []
    assert tok.tokenize("年") == ["年"]  # single CJK characters that are not stopwords stay
    weird = "a\x00b\x07c 😀\ud800 \u200b 中文\n\t" * 3
    assert tok.tokenize(weird) == tok.tokenize(weird)  # deterministic, no crash
    big = ("长文本 long text 测试 " * 8000)[:100_000]
    assert len(tok.tokenize(big)) > 1000
    assert tok.tokenize_many(["running", ""]) == [["run"], []]


def test_chinese_query_finds_annual_leave_paragraph(tok) -> None:
    paragraphs = {
        "leave": "员工入职满一年后，每年享有五天带薪年假；满十年的员工年假增加到十天。",
        "expense": "差旅报销需要在出差结束后十五个工作日内提交发票和审批单。",
        "security": "公司电脑必须安装杀毒软件，密码每九十天更换一次。",
        "meeting": "每周一上午十点召开部门例会，请提前准备工作周报。",
        "salary": "工资每月十日发放，如遇节假日则提前至最近的工作日。",
        "english": "The annual leave policy is described in the HR handbook.",
    }
    idx = BM25Index()
    idx.add(list(paragraphs), tok.tokenize_many(paragraphs.values()))
    res = idx.search(tok.tokenize("年假有多少天"), 3)
    assert res and res[0][0] == "leave"
    res = idx.search(tok.tokenize("How do I file travel 报销?"), 3)
    assert res[0][0] == "expense"


def test_memory_bytes_agrees_with_what_tracemalloc_sees_the_index_allocate() -> None:
    """The estimate the ingestion memory benchmark subtracts must be the index's real footprint."""
    import gc
    import tracemalloc

    rng = np.random.default_rng(11)
    source = _zipf_corpus(rng, 8000, 20000, 20, 120)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        # Fresh strings inside the window, as ingestion creates them (tokens, 64-hex chunk ids).
        docs = [[(t + ".")[:-1] for t in d] for d in source]
        ids = [f"{i:064x}" for i in range(len(docs))]
        idx = BM25Index()
        for i in range(0, len(docs), 256):
            idx.add(ids[i : i + 256], docs[i : i + 256])
        idx.search(docs[0][:4], 10)
        del docs, ids
        idx._last_scores = None  # the query cache is not part of the index
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    parts = idx.memory_bytes()
    assert parts["total"] == parts["postings"] + parts["arrays"] + parts["ids"] + parts["vocab"]
    assert 0.8 * held <= parts["total"] <= 1.2 * held, (parts, held)


def test_score_tokens_scores_an_unindexed_document_as_if_it_were_indexed() -> None:
    """The oracle: rank_bm25 over the corpus scores an indexed document the same as score_tokens
    scores its tokens (the statistics come from the index, the document from the caller)."""
    rng = np.random.default_rng(7)
    docs = _zipf_corpus(rng, 60, 40, 3, 20)
    idx = BM25Index()
    idx.add([f"d{i}" for i in range(len(docs))], docs)
    oracle = _oracle(idx, docs)
    for query in (docs[3][:3], ["t1", "t2", "t2", "absent"], docs[10][-2:]):
        expected = oracle.get_scores(query)
        for i in (0, 3, 10, 59):
            assert idx.score_tokens(query, docs[i]) == pytest.approx(expected[i], rel=1e-9, abs=1e-12)
    assert BM25Index().score_tokens(["a"], ["a"]) == 0.0


def test_max_score_bounds_every_score_and_counts_unseen_tokens() -> None:
    rng = np.random.default_rng(8)
    docs = _zipf_corpus(rng, 80, 30, 3, 25)
    idx = BM25Index()
    idx.add([f"d{i}" for i in range(len(docs))], docs)
    for query in (docs[0][:4], ["t0", "t0", "t5"], docs[7]):
        top = idx.search(query, 1)
        assert top and top[0][1] < idx.max_score(query)
    # An unseen token makes the bound larger: a query asking for it is covered less by any chunk.
    assert idx.max_score(["t0", "never-seen"]) > idx.max_score(["t0"]) > 0
    assert idx.max_score([]) == 0.0
