"""``benchmarks/run.py``: the documented benchmark sets name real scripts and refuse unknown steps."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
assert _spec and _spec.loader
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)  # benchmarks/ is not a package, and must not shadow anything on sys.path


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
