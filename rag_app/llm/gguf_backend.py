"""What the two in-process llama.cpp backends share: the GGUF file a setting names, one model loaded
and one generation at a time, the token estimate, and reading a verdict from first-token probabilities."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from .base import LLMBackend, LLMUnavailableError, approx_token_count
from .local_models import model_label, resolve_cache_dir
from .packaged_qwen import PACKAGED_PREFIX, ensure_packaged_gguf, packaged_model
from .settings import LLMSettings


class GgufBackend(LLMBackend):
    """A llama.cpp runtime in this process on a GGUF file used as it is (no conversion, no fp32 copy)."""

    label = ""  # the name's prefix, e.g. "llamacpp"

    def __init__(self, settings: LLMSettings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = resolve_cache_dir(settings, cache_dir)
        self._load_lock = threading.Lock()
        # One request at a time: the one context keeps the last prompt's cache for the next request.
        self._gen_lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def name(self) -> str:
        return f"{self.label}:{model_label(self.settings.model)}"

    @property
    def context_window(self) -> int:
        return self.settings.context_window

    def count_tokens(self, text: str) -> int:
        # No tokenizer is called for budgeting: a deliberate slight over-estimate (for Qwen's vocabulary
        # about 1.3x on Chinese), which only leaves the context budget a little unused, and the same
        # for both runtimes, so they quote the same sources.
        return approx_token_count(text)


def gguf_model_path(settings: LLMSettings, cache_dir: Path) -> Path:
    """The GGUF file the settings name: the packaged model (assembled on first use) or a ``.gguf`` path."""
    model = settings.model
    if model.startswith(PACKAGED_PREFIX):
        return ensure_packaged_gguf(cache_dir, packaged_model(model))
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise LLMUnavailableError(f"The llama.cpp backends need a .gguf file, got {model!r}")
    return path


def option_probabilities(token_probs: dict[str, float], options: Sequence[str]) -> dict[str, float]:
    """Each option's probability as the first token: the mass of the tokens that spell it (case and
    surrounding spaces aside; " Yes", "yes" and "YES" are one answer)."""
    wanted = {o.strip().lower(): o for o in options}
    out = dict.fromkeys(options, 0.0)
    for token, p in token_probs.items():
        option = wanted.get(token.strip().lower())
        if option is not None:
            out[option] += p
    return out
