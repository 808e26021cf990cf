"""``benchmarks/run.py``: the documented benchmark sets name real scripts and refuse unknown steps."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

BENCH = REPO / "benchmarks"


def _load_script(filename: str, module_name: str):
    # benchmarks/ is not a package, and must not shadow anything on sys.path
    spec = importlib.util.spec_from_file_location(module_name, BENCH / filename)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load_script("run.py", "bench_run")


def test_every_step_runs_a_script_that_exists() -> None:
    assert {"small", "1m"} <= set(run.SETS)
    for steps in run.SETS.values():
        for argv in steps.values():
            assert (BENCH / argv[0]).is_file(), argv


def test_unknown_step_is_a_clear_error_not_a_run() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "small", "--only", "nosuchstep"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "has no step nosuchstep" in out.stderr and "query" in out.stderr
    assert "Traceback" not in out.stderr


def test_bm25_benchmark_child_that_dies_is_an_error_not_a_hang(monkeypatch) -> None:
    # A missing comparison library once left `make bench-small` waiting forever on a dead child.
    monkeypatch.syspath_prepend(str(BENCH))  # bench_bm25 imports its sibling `machine` module
    bench_bm25 = _load_script("bench_bm25.py", "bench_bm25_under_test")
    assert bench_bm25._in_child(lambda: {"build_s": 1.5}) == {"build_s": 1.5}
    with pytest.raises(RuntimeError, match="exited with code 3"):
        bench_bm25._in_child(lambda: os._exit(3))
