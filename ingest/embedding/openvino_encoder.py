"""The embedder's encoder run by OpenVINO (``embedder.runtime: openvino`` and ``openvino-int8``).

Built once from the transformers folder the torch runtime loads: the fp32 ONNX export of
``exported_model`` converted to OpenVINO's own format (weights kept in fp32). OpenVINO fuses the
attention and layer-norm patterns itself and, on a CPU with native bfloat16 arithmetic
(AVX512-BF16 or AMX), computes in bfloat16 by default: about 2.1x the torch fp32 throughput on 2
cores with vectors within cosine 0.9999 of fp32 (BENCHMARKS.md, "Embedding throughput"); on other
CPUs it computes in fp32. ``embedder.precision`` overrides that choice.

``openvino-int8`` (the default) is that model statically quantised to int8 with NNCF: weights per
channel, and activations with ranges measured once on a shipped set of calibration texts
(``data/int8_calibration.jsonl``, written for this project: ``scripts/make_int8_calibration.py``),
SmoothQuant moving activation outliers into the weights first (NNCF's transformer preset). Every
linear layer then runs on the CPU's int8 dot products (VNNI here): about 3.2x torch fp32 on 2
cores, vectors within cosine 0.998 of fp32, nDCG@10 within 0.001 (BENCHMARKS.md, "Embedding throughput").
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ingest.embedding.exported_model import build_derived_model, derived_dir_for, export_onnx_fp32
from ingest.embedding.protocols import Kind

EXPORTER_VERSION = 1
MODEL_FILE = "model.xml"
VARIANT = "openvino"
INT8_VARIANT = "openvino-int8"
INT8_VERSION = 1  # bump when the calibration texts or the quantisation settings change
CALIBRATION_FILE = Path(__file__).resolve().parent / "data" / "int8_calibration.jsonl"

ModelInputs = Callable[[str, Kind], dict[str, np.ndarray]]


def openvino_dir_for(model_dir: Path) -> Path:
    """Where the OpenVINO copy of ``model_dir`` is kept: a sibling folder."""
    return derived_dir_for(model_dir, VARIANT)


def build_openvino_model(model_dir: str | Path) -> Path:
    """The OpenVINO model file for the transformers folder ``model_dir`` (built on first use, about 15 s)."""
    return build_derived_model(
        model_dir, variant=VARIANT, version=EXPORTER_VERSION, model_file=MODEL_FILE,
        build=_export_and_convert, about="the OpenVINO encoder (about 15 s)",
    )


def _export_and_convert(source: Path, out_dir: Path) -> None:
    import openvino as ov

    onnx_file = out_dir / "fp32.onnx"
    export_onnx_fp32(source, onnx_file)
    ov.save_model(ov.convert_model(str(onnx_file)), str(out_dir / MODEL_FILE), compress_to_fp16=False)
    onnx_file.unlink()


def build_openvino_int8_model(model_dir: str | Path, model_inputs: ModelInputs) -> Path:
    """The int8 OpenVINO model file for ``model_dir`` (built on first use from the OpenVINO model,
    about a minute on 2 cores). ``model_inputs(text, kind)`` gives the model's input arrays for one
    text, prefixed and tokenized as the embedder does (the calibration must see what inference sees)."""
    fp32_model = build_openvino_model(model_dir)
    return build_derived_model(
        model_dir, variant=INT8_VARIANT, version=INT8_VERSION, model_file=MODEL_FILE,
        build=lambda _source, out_dir: _quantise(fp32_model, out_dir, model_inputs),
        about="the int8 OpenVINO encoder (about a minute)",
    )


def calibration_texts() -> list[tuple[str, Kind]]:
    """The shipped calibration texts, as (text, kind)."""
    lines = CALIBRATION_FILE.read_text(encoding="utf-8").splitlines()
    return [(item["text"], item["kind"]) for item in map(json.loads, lines) if item["text"].strip()]


def _quantise(fp32_model: Path, out_dir: Path, model_inputs: ModelInputs) -> None:
    import nncf
    import openvino as ov
    from nncf.parameters import ModelType

    nncf.set_log_level(logging.WARNING)  # its per-step INFO lines are noise (its progress bars stay)
    model = ov.Core().read_model(str(fp32_model))
    names = {i.get_any_name() for i in model.inputs}
    texts = calibration_texts()
    dataset = nncf.Dataset(texts, lambda item: {k: v for k, v in model_inputs(*item).items() if k in names})
    quantised = nncf.quantize(model, dataset, model_type=ModelType.TRANSFORMER, subset_size=len(texts))
    ov.save_model(quantised, str(out_dir / MODEL_FILE), compress_to_fp16=False)


class OpenVinoEncoder:
    """A compiled OpenVINO model on the CPU: token arrays in, last hidden states out.

    Thread-safe: each call runs its own inference request on the shared compiled model."""

    def __init__(self, path: Path, num_threads: int | None, precision: str = "auto") -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = num_threads
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._model = core.compile_model(str(path), "CPU", config)  # from the file: no second copy kept
        self.input_names = [i.get_any_name() for i in self._model.inputs]
        # What OpenVINO chose ("bf16" where the CPU computes it natively, else "f32").
        chosen = self._model.get_property("INFERENCE_PRECISION_HINT")
        self.precision = chosen.to_string() if hasattr(chosen, "to_string") else str(chosen)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: inputs[name].astype(np.int64, copy=False) for name in self.input_names}
        result = self._model.create_infer_request().infer(feed)
        return np.array(result[0], dtype=np.float32)  # a copy: the request's buffer is reused
