"""A new local store is created whole or not at all (run/newstore.py): `nbops run` SIGKILLed at
several points of the store's creation, and two first runs at once, leave a store the next run
uses (or none), no RUNNING run, and no creation folder. Real `nbops run` processes, real signals."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.run.orphans import owner
from tests.conftest import write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))


def _creating(root: Path) -> list[Path]:
    return list(root.glob(".mlflow-creating-*"))


def _store_files(root: Path) -> list[Path]:
    """The store files being written: the one in place, and those in creation folders."""
    return [p for p in [root / "mlflow.db", *(f / "mlflow.db" for f in _creating(root))] if p.exists()]


KILL_POINTS = {
    "the creation has begun": lambda root: bool(_creating(root)) or (root / "mlflow.db").exists(),
    "its tables are being written": lambda root: any(p.stat().st_size > 0 for p in _store_files(root)),
    "the store is in place": lambda root: (root / "mlflow.db").exists() and not _creating(root),
}


def _statuses(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return [status for (status,) in con.execute("SELECT status FROM runs")]


def _run(*notebooks: Path) -> subprocess.Popen:
    return subprocess.Popen([NBOPS, "run", "-q", *map(str, notebooks)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.replace(" ", "-"))
def test_a_first_run_killed_while_it_creates_the_store_leaves_a_usable_one(project, point):
    nb = write_notebook(project / "nb.ipynb", [("code", "x = 1")])
    first = _run(nb)
    try:
        deadline = time.monotonic() + 120
        while not KILL_POINTS[point](project):
            assert first.poll() is None, f"nbops ended before {point}: {first.stdout.read()}"
            assert time.monotonic() < deadline, f"not within 120 s: {point}"
            time.sleep(0.001)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    db = project / "mlflow.db"
    if db.exists():  # only ever whole: MLflow's client opens it as it is
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT version_num FROM alembic_version").fetchall()
    second = _run(nb)
    out, _ = second.communicate(timeout=180)
    assert second.returncode == 0, out
    assert not _creating(project)  # the killed creation's folder is gone with the next one
    statuses = _statuses(db)
    assert "RUNNING" not in statuses and statuses.count("FINISHED") == 1, statuses


def test_two_first_runs_at_once_share_one_store(project):
    a = write_notebook(project / "a.ipynb", [("code", "x = 1")])
    b = write_notebook(project / "b.ipynb", [("code", "y = 2")])
    runs = [_run(a), _run(b)]
    outs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert sorted(_statuses(project / "mlflow.db")) == ["FINISHED", "FINISHED"]
    assert not _creating(project)


def test_a_creation_folder_its_nbops_left_goes_with_the_next_command(project):
    """Killed between the link and the removal of its folder: the store is whole and in place,
    and the next command removes the folder (a live nbops's stays)."""
    from nbops.run.newstore import CREATING_PREFIX, create_sqlite

    gone = subprocess.Popen(["true"])
    gone.wait()
    left = project / f"{CREATING_PREFIX}{gone.pid}-1-abcd"
    left.mkdir()
    (left / "mlflow.db").write_bytes(b"")
    live = project / f"{CREATING_PREFIX}{os.getpid()}-{owner().split(':')[2] or 0}-efgh"
    live.mkdir()
    create_sqlite(f"sqlite:///{project / 'mlflow.db'}")  # creates the store, removes the dead one's
    assert (project / "mlflow.db").is_file() and not left.exists() and live.is_dir()
    left.mkdir()
    create_sqlite(f"sqlite:///{project / 'mlflow.db'}")  # the store is there: only the sweep
    assert not left.exists() and live.is_dir()
