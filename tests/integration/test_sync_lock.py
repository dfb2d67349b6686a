"""An entry being uploaded by another process (a sync, or the `nbops run` that wrote it) is left to
it: a second sync says so in one line and uploads nothing; when the first is gone (killed: its lock
goes with its process), a sync uploads it once."""

from __future__ import annotations

import subprocess
import sys

from nbops.run import spool
from tests.conftest import all_runs

HOLDER = """
import sys, time
from pathlib import Path
from nbops.run import spool
with spool.holding(Path(sys.argv[1])) as mine:
    print("holding" if mine else "not held", flush=True)
    time.sleep(120)
"""


def test_an_entry_another_process_uploads_is_left_to_it(project, mlflow_client):
    root = spool.spool_root(project)
    nb = project / "out.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    record = {"experiment": "notebooks/a", "run_name": "a", "server_run_id": None,
              "notebook": "notebooks/a.ipynb", "tags": {"nbops.notebook": "notebooks/a.ipynb"},
              "params": {"n": "3"}, "metrics": spool.metric_rows({"acc": 0.9}, timestamp_ms=1000),
              "status": "FINISHED", "model": None, "start_time": 1000, "end_time": 2000}
    entry, _ = spool.write(root, record, {"notebook/out.ipynb": nb}, [])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(entry)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"  # a sync is uploading
        second = subprocess.run([sys.executable, "-m", "nbops", "sync"], cwd=project, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.strip() == f"skipped {entry.name}: another nbops process is uploading it"
        assert "Traceback" not in second.stderr
        assert entry.is_dir() and not all_runs(mlflow_client())  # nothing taken from the spool
    finally:
        holder.kill()
        holder.wait()
    after = subprocess.run([sys.executable, "-m", "nbops", "sync"], cwd=project, capture_output=True,
                           text=True, timeout=300)
    assert after.returncode == 0, after.stdout + after.stderr
    assert not spool.entries(root)
    runs = all_runs(mlflow_client())
    assert len(runs) == 1 and runs[0].data.metrics == {"acc": 0.9}
