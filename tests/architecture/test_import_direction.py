"""The layering, checked on the source: every import points down.

    front ends (cli > web > api, ui) -> service -> tuning, calibration, team, preview > evaluation
    > answering > retrieval -> config -> llm -> ingest

A package may import itself and any package of a lower layer, never a higher one nor a sibling of
its own layer (the web API and the UI do not know each other). Imports inside ``if TYPE_CHECKING``
count too: a type that names a higher layer is a dependency on it. Front ends reach the service
through its package (``rag_app.service``), never its internals.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# (package, layer): a higher number is a higher layer. Longest prefix wins.
LAYERS: dict[str, int] = {
    "ingest": 0,
    "rag_app.llm": 1,  # the LLM backends and their settings, which the config object composes
    "rag_app.config": 2,
    "rag_app.retrieval": 4,
    "rag_app.answering": 5,
    "rag_app.evaluation": 6,
    "rag_app.tuning": 7,
    "rag_app.calibration": 7,  # a sibling of tuning: neither knows the other
    "rag_app.team": 7,  # knowledge bases, accounts, conversations, feedback, audit (their tables)
    "rag_app.preview": 7,  # cited sources shown in place (PDF pages)
    "rag_app.service": 8,
    "rag_app.api": 9,
    "rag_app.ui": 9,
    "rag_app.web": 10,
    "rag_app.cli": 11,
}
FRONT_ENDS = ("rag_app.api", "rag_app.ui", "rag_app.web", "rag_app.cli")


def package_of(module: str) -> str | None:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from rag_app import cli" imports the subpackage, not just the package
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(root, f"{target}.{a.name}")]
            found += [(node.lineno, sub) for sub in subs] if subs else [(node.lineno, target)]
    return found


def _is_module(root: Path, module: str) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(root: Path = REPO) -> list[str]:
    out: list[str] = []
    for path in sorted({*root.glob("ingest/**/*.py"), *root.glob("rag_app/**/*.py")}):
        importer = package_of(module_name(path, root))
        if importer is None:
            continue
        for line, target in imports_of(path, root):
            where = f"{path.relative_to(root)}:{line} imports {target}"
            imported = package_of(target)
            if imported is None and target.split(".")[0] in ("ingest", "rag_app") and target != "rag_app":
                out.append(f"{where} (no such layer or module)")
            if imported is None or imported == importer:
                continue
            if LAYERS[imported] >= LAYERS[importer]:
                out.append(f"{where} ({importer} may not depend on {imported})")
            elif importer in FRONT_ENDS and imported == "rag_app.service" and target != "rag_app.service":
                out.append(f"{where} (front ends use the service package, not its internals)")
    return out


def test_every_import_points_down() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        ("ingest/bad.py", "from rag_app.config import Settings\n", "ingest may not depend on rag_app.config"),
        ("rag_app/retrieval/bad.py", "if TYPE_CHECKING:\n    from rag_app.service import KnowledgeBase\n",
         "rag_app.retrieval may not depend on rag_app.service"),
        ("rag_app/api/bad.py", "from ..ui import app\n", "rag_app.api may not depend on rag_app.ui"),
        ("rag_app/cli/bad.py", "from rag_app.service.jobs import Job\n", "not its internals"),
        ("rag_app/service/bad.py", "from rag_app.knowledge_base import KnowledgeBase\n", "no such layer"),
    ],
)
def test_the_check_catches_an_upward_import(tmp_path: Path, module: str, source: str, problem: str) -> None:
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    found = violations(tmp_path)
    assert len(found) == 1 and problem in found[0]
