"""Milvus full-text search (``bm25.backend: milvus``) on Milvus Lite: the store's keywords field and
``MilvusKeywordIndex``, checked against BM25 scores computed by hand from the documents."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.settings import BM25Settings, MilvusSettings
from ingest.stores import milvus_store as store_mod
from ingest.stores.milvus_keyword import MilvusKeywordIndex
from ingest.stores.milvus_store import MIGRATE_COMMAND, MilvusVectorStore, VectorStoreError, keyword_text
from ingest.types import Chunk

pytestmark = pytest.mark.integration  # opens Milvus Lite

DIM = 4

# Known documents (already tokens). "a" is in 4 of 7, "b" in 4, "3.5" and "x-y" in 1, "年假" in 2.
DOCS: list[list[str]] = [
    ["a", "b", "c", "a"],
    ["b", "c", "d"],
    ["a", "x-y", "3.5"],
    ["e", "f", "g", "h", "i", "j", "b"],
    ["a", "a", "a", "b"],
    ["年假", "员工", "天数", "年假"],
    ["年假", "a", "q"],
]


def _chunks(docs: Sequence[Sequence[str]], prefix: str = "c") -> list[Chunk]:
    return [
        Chunk(chunk_id=f"{prefix}{i}", doc_id=f"doc{i % 3}", source=f"/docs/{i % 3}.md", text=" ".join(d), ordinal=i)
        for i, d in enumerate(docs)
    ]


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class HandBM25:
    """Milvus's (Lucene's) BM25, computed directly from the documents."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float, b: float) -> None:
        self.docs, self.k1, self.b = [list(d) for d in docs], k1, b
        self.n = len(docs)
        self.avgdl = sum(map(len, docs)) / self.n

    def idf(self, t: str) -> float:
        df = sum(t in d for d in self.docs)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def score(self, query: Sequence[str], doc: Sequence[str]) -> float:
        norm = self.k1 * (1 - self.b + self.b * len(doc) / self.avgdl)
        return sum(
            self.idf(q) * doc.count(q) * (self.k1 + 1) / (doc.count(q) + norm)
            for q in query
            if doc.count(q) and any(q in d for d in self.docs)
        )

    def max_score(self, query: Sequence[str]) -> float:
        unseen = math.log(1 + (self.n + 0.5) / 0.5)
        return sum(self.idf(q) if any(q in d for d in self.docs) else unseen for q in query) * (self.k1 + 1)


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., MilvusVectorStore]]:
    opened: list[MilvusVectorStore] = []

    def factory(full_text: BM25Settings | None = None, name: str = "milvus.db") -> MilvusVectorStore:
        store = MilvusVectorStore(MilvusSettings(), str(tmp_path / name), DIM, full_text=full_text)
        store.warm_up()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def _filled(open_store: Callable[..., MilvusVectorStore], docs: Sequence[Sequence[str]], k1: float = 1.5,
            b: float = 0.75) -> tuple[MilvusVectorStore, MilvusKeywordIndex]:
    bm25 = BM25Settings(backend="milvus", k1=k1, b=b)
    store = open_store(bm25)
    store.upsert(_chunks(docs), _vectors(len(docs)), keywords=docs)
    return store, MilvusKeywordIndex(store, bm25)


QUERIES = [["a"], ["b", "c"], ["a", "a", "b"], ["年假"], ["3.5", "x-y"], ["zz", "a"], ["q"], ["nothing"]]


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.0), (0.9, 1.0)])
def test_scores_max_score_and_score_tokens_match_the_hand_computed_bm25(open_store, k1: float, b: float) -> None:
    store, index = _filled(open_store, DOCS, k1, b)
    hand = HandBM25(DOCS, k1, b)
    ids = [f"c{i}" for i in range(len(DOCS))]
    assert len(index) == len(DOCS) and index.ids() == set(ids)
    for q in QUERIES:
        expected = np.array([hand.score(q, d) for d in DOCS])
        hits = index.search(q, 10)
        assert {cid for cid, _ in hits} == {ids[i] for i in np.flatnonzero(expected)}
        for cid, score in hits:
            assert score == pytest.approx(expected[ids.index(cid)], rel=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        # every id, one unknown id, and repeats: 0 where no query term is present
        asked = [*reversed(ids), "missing", ids[0]]
        got = index.get_scores(q, asked)
        want = [*reversed(expected.tolist()), 0.0, expected[0]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
        assert index.max_score(q) == pytest.approx(hand.max_score(q), rel=1e-5)
        assert max(expected) <= index.max_score(q) + 1e-6
        for doc in (["a", "b", "zz", "a", "c"], ["年假", "年假", "a"], ["q"], []):
            assert index.score_tokens(q, doc) == pytest.approx(hand.score(q, doc), rel=1e-5, abs=1e-9)
    if b:
        assert index.avgdl() == pytest.approx(hand.avgdl, rel=1e-4)


def test_max_score_when_no_query_token_has_two_hits(open_store) -> None:
    """Tokens found once each give no pair of hits: avgdl comes from probing the hits' other tokens."""
    store, index = _filled(open_store, DOCS)
    hand = HandBM25(DOCS, 1.5, 0.75)
    for q in (["3.5"], ["x-y", "3.5", "unseen"], ["d"]):
        assert index.max_score(q) == pytest.approx(hand.max_score(q), rel=1e-5)
        assert index.score_tokens(q, ["3.5", "d", "d"]) == pytest.approx(hand.score(q, ["3.5", "d", "d"]), rel=1e-5)


def test_avgdl_is_counted_when_scores_cannot_tell_it(open_store) -> None:
    """Every token in one chunk only: no pair of hits anywhere, so the lengths are counted."""
    docs = [["u1", "u2"], ["v1", "v2", "v3", "v4", "v5"], ["w1"]]
    store, index = _filled(open_store, docs)
    hand = HandBM25(docs, 1.5, 0.75)
    assert store.keyword_lengths() == (3, 8)
    assert index.max_score(["v3", "zz"]) == pytest.approx(hand.max_score(["v3", "zz"]), rel=1e-5)
    assert index.score_tokens(["u1", "v2"], ["u1", "u1", "x"]) == pytest.approx(
        hand.score(["u1", "v2"], ["u1", "u1", "x"]), rel=1e-5
    )
    assert index.avgdl() == pytest.approx(8 / 3)


def test_empty_queries_and_an_empty_collection(open_store) -> None:
    bm25 = BM25Settings(backend="milvus")
    index = MilvusKeywordIndex(open_store(bm25), bm25)
    assert len(index) == 0 and index.ids() == set()
    assert index.search(["a"], 5) == [] and index.search([], 5) == []
    assert index.get_scores(["a"], ["x"]).tolist() == [0.0]
    assert index.max_score(["a"]) == 0.0 and index.max_score([]) == 0.0
    assert index.score_tokens(["a"], ["a"]) == 0.0


def test_upsert_replace_delete_and_set_source_keep_keyword_search_in_step(open_store) -> None:
    store, index = _filled(open_store, DOCS)
    assert index.search(["3.5"], 5)[0][0] == "c2"
    # replacing a row replaces its keywords
    new = ["zebrafish", "notebook"]
    store.upsert([Chunk(chunk_id="c2", doc_id="doc2", source="/docs/2.md", text="zebrafish notebook", ordinal=2)],
                 _vectors(1), keywords=[new])
    assert index.search(["3.5"], 5) == []
    assert [cid for cid, _ in index.search(["zebrafish"], 5)] == ["c2"]
    # a rename rewrites whole rows: keywords kept, so keyword search is unchanged
    before = {tuple(q): index.search(q, 10) for q in QUERIES}
    assert store.set_source(["c0", "c5", "missing"], "/docs/renamed.md") == 2
    assert store.fetch(["c5"])["c5"][0].source == "/docs/renamed.md"
    for q in QUERIES:
        after = index.search(q, 10)
        assert [cid for cid, _ in after] == [cid for cid, _ in before[tuple(q)]]
        np.testing.assert_allclose([s for _, s in after], [s for _, s in before[tuple(q)]], rtol=1e-6)
    # deleted chunks leave keyword search (and the statistics: N drops)
    store.delete(["c5", "c6"])
    assert index.search(["年假"], 5) == []
    rest = [*DOCS[:2], new, *DOCS[3:5]]
    hand = HandBM25(rest, 1.5, 0.75)
    assert index.max_score(["b"]) == pytest.approx(hand.max_score(["b"]), rel=1e-5)
    assert len(index) == 5


def test_dense_search_is_unchanged_in_a_full_text_collection(open_store) -> None:
    store, _ = _filled(open_store, DOCS)
    vectors = _vectors(len(DOCS))
    hits = store.search(vectors[3], 1)[0]
    assert hits[0][0].chunk_id == "c3" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert store.get_texts(["c1"]) == {"c1": "b c d"}


def test_a_full_text_store_refuses_rows_without_keywords(open_store) -> None:
    store = open_store(BM25Settings(backend="milvus"))
    with pytest.raises(ValueError, match="keywords"):
        store.upsert(_chunks(DOCS[:1]), _vectors(1))
    with pytest.raises(ValueError, match="one keyword list per chunk"):
        store.upsert(_chunks(DOCS[:2]), _vectors(2), keywords=DOCS[:1])
    assert store.count() == 0


def test_an_old_collection_opened_for_full_text_asks_for_the_migration(open_store) -> None:
    plain = open_store(None)
    plain.upsert(_chunks(DOCS[:2]), _vectors(2))
    plain.close()
    with pytest.raises(VectorStoreError, match="--migrate-from") as err:
        open_store(BM25Settings(backend="milvus"))
    assert MIGRATE_COMMAND in str(err.value) and "keywords" in str(err.value)


def test_a_full_text_collection_opened_without_full_text_serves_dense_search(open_store) -> None:
    store, _ = _filled(open_store, DOCS)
    store.close()
    dense_only = open_store(None)
    assert dense_only.count() == len(DOCS) and dense_only.has_full_text
    dense_only.upsert(_chunks([["new"]], prefix="n"), _vectors(1, seed=5))  # no keywords: stored empty
    assert dense_only.search(_vectors(1, seed=5), 1)[0][0][0].chunk_id == "n0"
    assert dense_only.set_source(["c1"], "/docs/x.md") == 1
    dense_only.close()
    bm25 = BM25Settings(backend="milvus")
    again = open_store(bm25)
    index = MilvusKeywordIndex(again, bm25)
    assert [cid for cid, _ in index.search(["d"], 3)] == ["c1"]  # kept through the rename
    assert index.search(["new"], 3) == []


def test_an_existing_collection_keeps_its_bm25_parameters(open_store) -> None:
    _filled(open_store, DOCS, k1=1.2, b=0.5)[0].close()
    store = open_store(BM25Settings(backend="milvus", k1=2.0, b=0.9))
    assert store.bm25_params() == (1.2, 0.5)
    index = MilvusKeywordIndex(store, BM25Settings(backend="milvus", k1=2.0, b=0.9))
    assert index.max_score(["a"]) == pytest.approx(HandBM25(DOCS, 1.2, 0.5).max_score(["a"]), rel=1e-5)


def test_keyword_text_keeps_tokens_whole_and_within_the_varchar_limit(monkeypatch) -> None:
    assert keyword_text(["x-y", "o'k", "3.5", "年假"]) == "x-y o'k 3.5 年假"
    assert keyword_text(["new york", " a\u3000b ", ""]) == "newyork ab"
    monkeypatch.setattr(store_mod, "_MAX_TEXT_BYTES", 10)
    assert keyword_text(["abcd", "efgh", "ijkl"]) == "abcd efgh"  # 14 bytes: the last token is dropped whole
    assert keyword_text(["abcd", "efghi"]) == "abcd efghi"  # exactly 10
    assert keyword_text(["abcdefghijklmn"]) == "abcdefghij"  # one token longer than the limit: cut
    assert keyword_text(["年假", "天数年"]) == "年假"  # multi-byte: never half a character or token


def test_a_milvus_server_without_full_text_search_is_refused_by_version() -> None:
    """Milvus 2.3.5 (PyPI ``milvus``, the local server shape) reports "v2.3.5-lite" and has no BM25
    function: refused before anything is created (checked by hand against that server too)."""

    class OldServer:
        def get_server_version(self) -> str:
            return "v2.3.5-lite"

    store = MilvusVectorStore(MilvusSettings(), "http://127.0.0.1:19530", DIM, full_text=BM25Settings(backend="milvus"))
    store._client = OldServer()
    with pytest.raises(VectorStoreError, match="needs Milvus 2.5 or later"):
        store._check_full_text_server()
    OldServer.get_server_version = lambda self: "v2.5.4"  # type: ignore[method-assign]
    store._check_full_text_server()  # a 2.5 server passes
    store._client = None
