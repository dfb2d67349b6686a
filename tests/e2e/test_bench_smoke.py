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
    ("bench_serve.py", ["--quick"]),
])
def test_benchmark_runs_on_a_tiny_size(script, args, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "NBOPS_BENCH_OUT": str(tmp_path)})
    assert done.returncode in (0, 1), done.stderr
    assert "target " in done.stdout and ": ratio " in done.stdout


def test_update_results_appends_the_verdicts(tmp_path):
    import json
    import shutil

    bench = tmp_path / "bench"
    shutil.copytree(REPO / "bench", bench, ignore=shutil.ignore_patterns("out", "__pycache__"))
    (bench / "out").mkdir()
    (bench / "out" / "x.json").write_text(json.dumps({"machine": "m", "results": [
        {"target": "cli-start", "ratio": 0.03, "goal": 0.15, "verdict": "PASS", "baseline_s": 1.8,
         "nbops_s": 0.06}]}))
    before = (bench / "RESULTS.md").read_text()
    done = subprocess.run([sys.executable, str(bench / "update_results.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    added = (bench / "RESULTS.md").read_text()[len(before):]
    assert "| cli-start | 0.06 | 1.8 | 0.03 | <= 0.15 | PASS |" in added and "(make bench)" in added
