"""Names and places of local models, shared by the in-process backends."""
from __future__ import annotations

from pathlib import Path

from .packaged_qwen import PACKAGED_PREFIX
from .settings import LLMSettings


def model_label(model: str) -> str:
    """``model`` as backend names show it: a packaged model without its ``packaged:`` prefix."""
    return model.removeprefix(PACKAGED_PREFIX)


def resolve_cache_dir(settings: LLMSettings, cache_dir: Path | None) -> Path:
    """Where converted/assembled models go: ``cache_dir`` if given, else the settings' (default ``models``)."""
    return Path(cache_dir) if cache_dir is not None else Path(settings.cache_dir or "models")
