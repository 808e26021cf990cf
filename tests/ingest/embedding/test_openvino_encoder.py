"""The OpenVINO embedder (``embedder.runtime: openvino``, the default) against the fp32 torch one on
the sample documents: the same vectors to within a rounding (bfloat16 on a CPU that computes it,
else fp32), the same best passage for the sample questions, converted once and reused."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pytest

from ingest.embedding import Embedder
from ingest.embedding.openvino_encoder import MODEL_FILE, build_openvino_model, openvino_dir_for
from ingest.settings import EmbedderSettings
from tests.support.sample_text import SAMPLE_QUESTIONS, sample_paragraphs
from tests.support.tiny_bert import write_tiny_random_bert

# Measured on the samples: bfloat16 vectors were within cosine 0.99998 of fp32 (int8: 0.996).
MIN_COSINE = {"bf16": 0.9995, "f32": 0.99999}


@pytest.mark.parametrize("precision", ["auto", "f32"])
def test_openvino_vectors_match_torch_fp32_on_the_samples(
    e5_model_dir: Path, e5_torch_embedder: Embedder, precision: str
) -> None:
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), runtime="openvino", precision=precision))
    embedder.warm_up()
    assert embedder.precision in MIN_COSINE
    if precision == "f32":
        assert embedder.precision == "f32"
    passages = sample_paragraphs()
    assert len(passages) > 20
    fp32, got = e5_torch_embedder.embed_documents(passages), embedder.embed_documents(passages)
    assert got.shape == fp32.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert (fp32 * got).sum(axis=1).min() >= MIN_COSINE[embedder.precision]
    q32, q = e5_torch_embedder.embed_queries(SAMPLE_QUESTIONS), embedder.embed_queries(SAMPLE_QUESTIONS)
    assert (q32 * q).sum(axis=1).min() >= MIN_COSINE[embedder.precision]
    assert ((q @ got.T).argmax(axis=1) == (q32 @ fp32.T).argmax(axis=1)).all()


def test_the_default_runtime_is_openvino(e5_embedder: Embedder, e5_model_dir: Path) -> None:
    assert EmbedderSettings().runtime == "openvino" and e5_embedder.settings.runtime == "openvino"
    path = openvino_dir_for(e5_model_dir) / MODEL_FILE
    assert path.is_file() and path.with_suffix(".bin").is_file()
    before = path.stat().st_mtime_ns
    assert build_openvino_model(e5_model_dir) == path and path.stat().st_mtime_ns == before  # reused


def test_tiny_random_bert_is_converted_again_when_its_weights_change(tmp_path: Path) -> None:
    folder = write_tiny_random_bert(tmp_path / "tiny-bert", seed=0)
    texts = ["alpha beta", "gamma", "delta alpha gamma beta"]

    def embed(runtime: str) -> np.ndarray:
        settings = EmbedderSettings(model=str(folder), runtime=runtime, precision="f32", pooling="mean",
                                    normalize=False, query_prefix="", passage_prefix="")
        return Embedder(settings).embed_documents(texts)

    first = build_openvino_model(folder)
    np.testing.assert_allclose(embed("openvino"), embed("torch"), atol=1e-4)
    stamp = first.stat().st_mtime_ns
    write_tiny_random_bert(folder, seed=1)  # a rebuilt source folder: new weights
    assert build_openvino_model(folder) == first and first.stat().st_mtime_ns != stamp
    np.testing.assert_allclose(embed("openvino"), embed("torch"), atol=1e-4)  # not the old conversion


def test_openvino_runs_on_the_cpu_only(e5_model_dir: Path) -> None:
    embedder = Embedder(EmbedderSettings(cache_dir=str(e5_model_dir.parent), runtime="openvino", device="cuda"))
    with pytest.raises(ValueError, match="runs on the CPU"):
        embedder.warm_up()
