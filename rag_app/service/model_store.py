"""Tuned models in the data directory, versioned, with one active and the rest kept for rollback.

    <data_dir>/tuned/reranker/v0001-20261123-101500/{model files, manifest.json}
    <data_dir>/tuned/reranker/state.json   {"active": "v0002-...", "history": ["v0001-...", "v0002-..."]}

``apply_active`` turns the active version into reranker settings; the knowledge base and
rag-eval call it, so a switch or a rollback takes effect without editing any YAML.
``retrieval.reranker.use_tuned: false`` ignores tuned models altogether.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.files import atomic_write_text
from rag_app.config import Settings

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^v(\d{4,})-\d{8}-\d{6}$")


class ModelStoreError(RuntimeError):
    """A version that does not exist, or nothing to roll back to."""


@dataclass(frozen=True)
class TunedModel:
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def blend(self) -> float:
        return float(self.manifest.get("blend", 1.0))

    @property
    def max_tokens(self) -> int | None:
        return self.manifest.get("max_tokens")


class TunedModelStore:
    def __init__(self, data_dir: Path, kind: str = "reranker") -> None:
        self.root = Path(data_dir) / "tuned" / kind

    # --- versions -----------------------------------------------------------------------------
    def versions(self) -> list[TunedModel]:
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and _VERSION_RE.match(d.name) and (d / "manifest.json").is_file():
                out.append(TunedModel(d.name, d, _read_json(d / "manifest.json")))
        return out

    def get(self, version: str) -> TunedModel:
        for m in self.versions():
            if m.version == version or m.version.split("-", 1)[0] == version:
                return m
        raise ModelStoreError(f"no tuned model '{version}' in {self.root}")

    def new_version_dir(self) -> Path:
        """A fresh, empty folder for the next version (numbered after every existing one)."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for d in self.root.iterdir() if (m := _VERSION_RE.match(d.name))]
        name = f"v{max(numbers, default=0) + 1:04d}-{datetime.now():%Y%m%d-%H%M%S}"
        path = self.root / name
        path.mkdir()
        return path

    def write_manifest(self, path: Path, manifest: dict[str, Any]) -> None:
        _write_json(path / "manifest.json", manifest)

    def discard(self, path: Path) -> None:
        """Remove a version that never became usable (training failed or was cancelled)."""
        if path.parent == self.root and _VERSION_RE.match(path.name):
            shutil.rmtree(path, ignore_errors=True)

    # --- which one is on ------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        path = self.root / "state.json"
        if path.is_file():
            try:
                return _read_json(path)
            except ModelStoreError as exc:  # a broken pointer must not stop the app: no tuned model
                log.warning("%s; using no tuned model", exc)
        return {"active": None, "history": []}

    def active(self) -> TunedModel | None:
        name = self._state().get("active")
        if not name:
            return None
        try:
            return self.get(name)
        except ModelStoreError:
            log.warning("the active tuned model %s is missing from %s: using none", name, self.root)
            return None

    def activate(self, version: str) -> TunedModel:
        model = self.get(version)
        state = self._state()
        history = [v for v in state.get("history", []) if v != model.version] + [model.version]
        _write_json(self.root / "state.json", {"active": model.version, "history": history})
        log.info("tuned reranker %s is now active", model.version)
        return model

    def rollback(self) -> TunedModel | None:
        """Back to the version active before the current one (None: back to no tuned model)."""
        state = self._state()
        current = state.get("active")
        if not current:
            raise ModelStoreError("no tuned model is active: nothing to roll back")
        history = [v for v in state.get("history", []) if v != current]
        existing = {m.version for m in self.versions()}
        while history and history[-1] not in existing:
            history.pop()
        previous = history[-1] if history else None
        _write_json(self.root / "state.json", {"active": previous, "history": history})
        log.info("rolled back from %s to %s", current, previous or "no tuned model")
        return self.get(previous) if previous else None

    def deactivate(self) -> None:
        state = self._state()
        _write_json(self.root / "state.json", {"active": None, "history": state.get("history", [])})


def apply_active(settings: Settings) -> Settings:
    """``settings`` with the active tuned reranker switched on (model, blend, token cap), if any."""
    reranker = settings.retrieval.reranker
    if not reranker.use_tuned:
        return settings
    model = TunedModelStore(settings.kb_dir).active()
    if model is None:
        return settings
    update: dict[str, Any] = {"enabled": True, "model": str(model.path), "blend": model.blend}
    if model.max_tokens:
        update["max_tokens"] = int(model.max_tokens)
    retrieval = settings.retrieval.model_copy(update={"reranker": reranker.model_copy(update=update)})
    return settings.model_copy(update={"retrieval": retrieval})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelStoreError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelStoreError(f"{path}: not a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2))
