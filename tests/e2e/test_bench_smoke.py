"""The benchmark scripts run (on tiny sizes) and print their verdict lines; no timing asserted."""

from __future__ import annotations

import re
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
    ("bench_models.py", ["--versions", "2", "--pairs", "1", "--no-server"]),
    ("bench_predict.py", ["--rows", "1000", "--pairs", "1"]),
    ("bench_cells.py", ["--cells", "50", "--pairs", "1", "--cli-cells", "0"]),
])
def test_benchmark_runs_on_a_tiny_size(script, args, tmp_path, request):
    if script in ("bench_serve.py", "bench_predict.py"):  # the session's project (clf@champion), read only
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
    # no timing asserted: a missed goal (FAIL) is a result, but the exit code must say which
    verdicts = re.findall(r"^target \S+: ratio \S+ \(goal [^)]*\) (PASS|FAIL)$", stdout, re.M)
    assert verdicts, stdout[-2000:]
    assert proc.returncode == (0 if set(verdicts) == {"PASS"} else 1), (verdicts, stderr[-2000:])
