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
