"""The in-memory fakes implement the protocols the real components implement, and (integration) the
real components still implement them: a fake can only stand in for what the code asks of the real
one."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import TokenCounter
from ingest.embedding import TextEmbedder
from ingest.indexer import DocumentEmbedder
from ingest.stores.protocols import SearchableVectorStore, WritableVectorStore
from ingest.types import Chunk
from rag_app.answering.answerer import AnswerSource, QuestionEmbedder
from rag_app.llm.base import LLMBackend
from rag_app.retrieval.protocols import (
    KeywordIndex,
    PassageScorer,
    QueryEmbedder,
    SearchableKnowledgeBase,
    Tokenizer,
    VectorStore,
)
from tests.support.fakes import (
    FixedQueryEmbedder,
    HashingEmbedder,
    InMemoryVectorStore,
    LengthScorer,
    ScriptedLLM,
    TermCountIndex,
    WhitespaceTokenizer,
)
from tests.support.protocols import protocol_mismatches

EMBEDDER_PROTOCOLS: list[type] = [TextEmbedder, QueryEmbedder, TokenCounter, DocumentEmbedder, QuestionEmbedder]
VECTOR_STORE_PROTOCOLS: list[type] = [WritableVectorStore, SearchableVectorStore, VectorStore]


def _assert_implements(obj: object, protocols: Sequence[type]) -> None:
    for proto in protocols:
        assert protocol_mismatches(obj, proto) == [], f"{type(obj).__name__} vs {proto.__name__}"


@pytest.mark.parametrize(
    ("fake", "protocols"),
    [
        (HashingEmbedder(), EMBEDDER_PROTOCOLS),
        (InMemoryVectorStore(8), VECTOR_STORE_PROTOCOLS),
        (FixedQueryEmbedder({}, 8), [QueryEmbedder]),
        (TermCountIndex({}), [KeywordIndex]),
        (WhitespaceTokenizer(), [Tokenizer]),
        (LengthScorer(), [PassageScorer]),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, list) else "",
)
def test_each_fake_implements_the_protocols_it_stands_in_for(fake: object, protocols: list[type]) -> None:
    _assert_implements(fake, protocols)
    for proto in protocols:
        if getattr(proto, "_is_runtime_protocol", False):
            assert isinstance(fake, proto), proto.__name__


def test_the_scripted_llm_is_a_complete_backend() -> None:
    llm = ScriptedLLM(["a ", "b"])
    assert isinstance(llm, LLMBackend)  # instantiable: every abstract method is there
    assert llm.generate([{"role": "user", "content": "q"}]) == "a b" and llm.calls[0][0]["content"] == "q"
    assert llm.count_tokens("two words") > 0 and llm.context_window == 8192


def test_the_protocol_check_catches_what_is_missing_or_called_differently() -> None:
    class Half:
        def upsert(self, items: Sequence[Chunk], vectors: np.ndarray) -> None: ...  # "items", not "chunks"

        def delete(self, chunk_ids: list[str], hard: bool) -> int: ...  # an extra required parameter

        count = 3  # not a method

    problems = protocol_mismatches(Half(), WritableVectorStore)
    assert "upsert: no parameter 'chunks'" in problems
    assert "delete: extra required parameter 'hard'" in problems
    assert "count: not a method" in problems
    assert "all_ids: missing" in problems and "flush: missing" in problems


def test_the_hashing_embedder_is_deterministic_normalised_and_lexical() -> None:
    embedder = HashingEmbedder(dim=512)
    docs = embedder.embed_documents(["年假有几天", "annual leave days", "upload size limit", ""])
    assert docs.shape == (4, 512) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs[:3], axis=1), 1.0, rtol=1e-6)
    assert not docs[3].any()  # nothing to embed: the zero vector, not NaN
    np.testing.assert_array_equal(HashingEmbedder(dim=512).embed_queries(["年假有几天"])[0], docs[0])
    query = embedder.embed_queries(["how many annual leave days"])[0]
    assert int(np.argmax(docs[:3] @ query)) == 1
    # Token counts add up the way the chunker relies on: prefix and specials + the text's own tokens.
    text = "入职满五年 annual leave, 18 days."
    assert embedder.count_tokens([text]) == [embedder.prefix_tokens("passage") + len(embedder.token_offsets(text))]
    assert [text[s:e] for s, e in embedder.token_offsets(text)][:6] == ["入", "职", "满", "五", "年", "annual"]
    with pytest.raises(TypeError):
        embedder.embed_documents("a str")


def test_the_in_memory_store_keeps_rows_like_milvus() -> None:
    store = InMemoryVectorStore(2)
    a = Chunk("a", "d", "x.md", "alpha", 0, token_count=7)
    b = Chunk("b", "d", "x.md", "beta", 1)
    store.upsert([a, b], np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32))
    assert store.count() == 2 and store.all_ids() == {"a", "b"} and store.get_texts(["a", "zz"]) == {"a": "alpha"}
    (hits,) = store.search(np.array([1.0, 0.0]), 5)
    assert [c.chunk_id for c, _ in hits] == ["a", "b"] and hits[0][0].token_count == 0  # not stored, as in Milvus
    assert store.set_source(["b", "zz"], "y.md") == 1 and store.fetch(["b"])["b"][0].source == "y.md"
    assert store.delete(["a", "a", "zz"]) == 2 and store.all_ids() == {"b"}
    assert store.sample_vectors(4).shape == (1, 2) and InMemoryVectorStore(2).sample_vectors(4).shape == (0, 2)
    with pytest.raises(ValueError, match="one vector per chunk"):
        store.upsert([a], np.zeros((2, 2)))


# --- the real components implement the same protocols ---------------------------------------------


@pytest.mark.integration
def test_the_real_components_implement_the_protocols_the_fakes_implement(tmp_path: Path) -> None:
    """Constructed only (nothing loads or connects): the check reads the classes, never a property."""
    from ingest.embedding import Embedder
    from ingest.settings import EmbedderSettings, MilvusSettings
    from ingest.stores.bm25_index import BM25Index
    from ingest.stores.milvus_store import MilvusVectorStore
    from ingest.text_tokenizer import BM25Tokenizer
    from rag_app.config import RerankerSettings, Settings
    from rag_app.retrieval.rerank import CrossEncoderReranker
    from rag_app.service import KnowledgeBase

    embedder = Embedder(EmbedderSettings())
    _assert_implements(embedder, EMBEDDER_PROTOCOLS)
    _assert_implements(MilvusVectorStore(MilvusSettings(), str(tmp_path / "milvus.db"), 8), VECTOR_STORE_PROTOCOLS)
    _assert_implements(BM25Index(), [KeywordIndex])
    _assert_implements(BM25Tokenizer(), [Tokenizer])
    _assert_implements(CrossEncoderReranker(RerankerSettings()), [PassageScorer])
    assert not embedder.is_warm  # nothing was loaded by the checks
    # A knowledge base, real or over fakes, is what answering, evaluation and tuning read.
    real = KnowledgeBase(Settings(data_dir=tmp_path / "real"))
    faked = KnowledgeBase(
        Settings(data_dir=tmp_path / "fake"), embedder=HashingEmbedder(), vectors=InMemoryVectorStore(8)
    )
    for kb in (real, faked):
        _assert_implements(kb, [SearchableKnowledgeBase, AnswerSource])
