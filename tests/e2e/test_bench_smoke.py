"""The benchmark scripts run (on tiny sizes) and print their verdict lines; no timing asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("script,args", [
    ("bench_review.py", ["--cells", "20", "--changed", "2", "--pairs", "1"]),
    ("bench_check.py", ["--notebooks", "4", "--sample", "1", "--pairs", "1"]),
    ("bench_plan.py", ["--notebooks", "2", "--pairs", "1"]),
    ("bench_start.py", ["--pairs", "1"]),
    ("bench_run.py", ["--notebooks", "2", "--pairs", "1"]),
])
def test_benchmark_runs_on_a_tiny_size(script, args, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "NBOPS_BENCH_OUT": str(tmp_path)})
    assert done.returncode in (0, 1), done.stderr
    assert "target " in done.stdout and ": ratio " in done.stdout
