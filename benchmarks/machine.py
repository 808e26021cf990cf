"""Shared by the benchmark scripts: offline setup, what machine they ran on, and writing a
script's own section of BENCHMARKS.md."""
from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def offline_setup() -> Path:
    """Before anything imports transformers: packaged models only (never a hub download), quiet
    tokenizers and milvus-lite's pkg_resources warning; the repository importable. Returns its root."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return REPO


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace (or append) the BENCHMARKS.md section that starts with ``heading`` (a ``## `` line),
    leaving every other section untouched."""
    import re

    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = text.rstrip("\n") + "\n\n"  # a blank line before the next section's heading
    new = pattern.sub(lambda _: text, old, count=1) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
