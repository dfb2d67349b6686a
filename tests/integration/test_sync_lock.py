"""`nbops sync` twice at once on one spool: the second stops with one line (exit 2) and uploads
nothing; when the first is gone (killed: its lock goes with its process), a sync uploads it once."""

from __future__ import annotations

import subprocess
import sys

from nbops.run import spool
from tests.conftest import all_runs

HOLDER = """
import sys, time
from pathlib import Path
from nbops.run import spool
with spool.uploading(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_sync_of_the_same_spool_stops_with_one_line(project, mlflow_client):
    root = spool.spool_root(project)
    nb = project / "out.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    record = {"experiment": "notebooks/a", "run_name": "a", "server_run_id": None,
              "notebook": "notebooks/a.ipynb", "tags": {"nbops.notebook": "notebooks/a.ipynb"},
              "params": {"n": "3"}, "metrics": spool.metric_rows({"acc": 0.9}, timestamp_ms=1000),
              "status": "FINISHED", "model": None, "start_time": 1000, "end_time": 2000}
    entry = spool.write(root, record, {"notebook/out.ipynb": nb}, [])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"  # a sync is uploading
        second = subprocess.run([sys.executable, "-m", "nbops", "sync"], cwd=project, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another `nbops sync` is uploading" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert entry.is_dir()  # nothing taken from the spool
    finally:
        holder.kill()
        holder.wait()
    after = subprocess.run([sys.executable, "-m", "nbops", "sync"], cwd=project, capture_output=True,
                           text=True, timeout=300)
    assert after.returncode == 0, after.stdout + after.stderr
    assert not spool.entries(root)
    runs = all_runs(mlflow_client())
    assert len(runs) == 1 and runs[0].data.metrics == {"acc": 0.9}
