"""The benchmark scripts run (on tiny sizes) and print their verdict lines; no timing asserted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

# under pytest's own 300 s, leaving time to stop the script (and bench_serve.py its servers)
TIMEOUT = 200


@pytest.mark.parametrize("script,args", [
    ("bench_review.py", ["--cells", "20", "--changed", "2", "--pairs", "1"]),
    ("bench_check.py", ["--notebooks", "4", "--sample", "1", "--pairs", "1"]),
    ("bench_plan.py", ["--notebooks", "2", "--pairs", "1"]),
    ("bench_start.py", ["--pairs", "1"]),
    ("bench_run.py", ["--notebooks", "2", "--pairs", "1"]),
    ("bench_serve.py", ["--quick"]),
])
def test_benchmark_runs_on_a_tiny_size(script, args, tmp_path, request):
    if script == "bench_serve.py":  # the session's project (clf@champion); the bench only reads it
        args = [*args, "--project", str(request.getfixturevalue("trained_project"))]
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "NBOPS_BENCH_OUT": str(tmp_path)})
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM, not SIGKILL: bench_serve.py stops its servers on the way out
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"{script} still running after {TIMEOUT} s:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    assert proc.returncode in (0, 1), stderr
    assert "target " in stdout and ": ratio " in stdout


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
