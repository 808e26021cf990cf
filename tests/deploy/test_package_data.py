"""Text files the code reads at run time are declared as package data, so a wheel carries them
(an editable install reads the source tree and would hide a missing declaration)."""
from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from rag_app.calibration.offtopic import POOLS
from rag_app.retrieval.threshold import REFERENCE_PASSAGES
from tests.support.paths import REPO


def test_every_runtime_data_file_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["rag_app"]
    package = REPO / "rag_app"
    data_files = [p for p in package.rglob("data/*") if p.is_file()]
    assert {REFERENCE_PASSAGES, *POOLS.values()} <= set(data_files)
    for path in data_files:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch(relative, g) for g in globs), f"{relative} would be missing from a wheel"


def test_the_migrations_travel_with_the_package() -> None:
    """Alembic reads its scripts from ingest/state/migrations at run time: none may be left out."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["ingest"]
    package = REPO / "ingest"
    scripts = [p for p in (package / "state" / "migrations").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len([p for p in scripts if p.parent.name == "versions"]) >= 4
    for path in scripts:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch(relative, g) for g in globs), f"{relative} would be missing from a wheel"
