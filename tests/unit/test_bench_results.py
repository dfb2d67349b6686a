"""bench/update_results.py appends a run's verdicts to bench/RESULTS.md (on a copy of bench/)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


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


def test_issue_15_benchmarks_are_wired_and_state_their_goals():
    """Each issue-15 target has its script in bench/ (run by `make bench`'s bench_*.py loop), which
    parses its options and names its target and goal."""
    import re

    makefile = (REPO / "Makefile").read_text()
    assert "$(wildcard bench/bench_*.py)" in makefile
    targets = {"bench_models.py": ("models-list-", "0.4"), "bench_predict.py": ("predict-200k", "0.4"),
               "bench_demo.py": ("demo-first-run", "0.5"), "bench_run.py": ("tracked-vs-untracked", "1.2"),
               "bench_serve.py": ("serve-first-200", "0.5")}
    for script, (target, goal) in targets.items():
        text = (REPO / "bench" / script).read_text()
        assert target in text and re.search(rf"\b{re.escape(goal)}\)", text), script
        done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and "usage:" in done.stdout, (script, done.stderr[-500:])
