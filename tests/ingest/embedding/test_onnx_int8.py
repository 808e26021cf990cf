"""The int8 ONNX Runtime embedder (``embedder.runtime: onnx-int8``) against the fp32 torch one, on
the sample documents: vectors within a stated cosine, the same best passage for the sample
questions, built once and reused."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pytest

from ingest.embedding import Embedder
from ingest.embedding.onnx_int8 import MODEL_FILE, build_int8_model, int8_dir_for
from ingest.settings import EmbedderSettings
from tests.support.sample_text import SAMPLE_QUESTIONS, sample_paragraphs

pytestmark = pytest.mark.integration

# Measured on the samples: the lowest cosine between an int8 and an fp32 vector was about 0.996.
MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def int8_embedder(e5_model_dir: Path) -> Embedder:
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), runtime="onnx-int8"))
    embedder.warm_up()
    return embedder


def test_int8_vectors_stay_close_to_fp32_on_the_samples(int8_embedder: Embedder, e5_torch_embedder: Embedder) -> None:
    passages = sample_paragraphs()
    assert len(passages) > 20
    fp32, int8 = e5_torch_embedder.embed_documents(passages), int8_embedder.embed_documents(passages)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-4)
    cosines = (fp32 * int8).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines.min()
    q32, q8 = e5_torch_embedder.embed_queries(SAMPLE_QUESTIONS), int8_embedder.embed_queries(SAMPLE_QUESTIONS)
    assert (q32 * q8).sum(axis=1).min() >= MIN_COSINE
    # Each question's best passage is the same under both runtimes.
    assert ((q8 @ int8.T).argmax(axis=1) == (q32 @ fp32.T).argmax(axis=1)).all()


def test_the_int8_model_is_built_once_and_reused(
    int8_embedder: Embedder, e5_model_dir: Path
) -> None:
    path = int8_dir_for(e5_model_dir) / MODEL_FILE
    assert path.is_file() and path.stat().st_size < 150 * 2**20  # int8: about a quarter of the fp32 size
    before = path.stat().st_mtime_ns
    assert build_int8_model(e5_model_dir) == path and path.stat().st_mtime_ns == before


def test_the_int8_model_has_each_layers_attention_fused(int8_embedder: Embedder, e5_model_dir: Path) -> None:
    # The speed of this runtime comes from ONNX Runtime's fused kernels (BENCHMARKS.md): an export
    # the optimiser no longer recognises would still run, only 1.5x slower.
    import onnx

    graph = onnx.load(str(int8_dir_for(e5_model_dir) / MODEL_FILE), load_external_data=False).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QAttention") + ops.count("Attention") == 12, sorted(set(ops))  # one per layer
    assert "SkipLayerNormalization" in ops and "Softmax" not in ops


def test_onnx_int8_runs_on_the_cpu_only(e5_model_dir: Path) -> None:
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), runtime="onnx-int8", device="cuda"))
    with pytest.raises(ValueError, match="runs on the CPU"):
        embedder.warm_up()
