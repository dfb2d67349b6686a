"""A new local store is created whole or not at all (run/newstore.py): `nbops run` SIGKILLed at
several points of the store's creation, and two first runs at once, leave a store the next run
uses (or none), no RUNNING run, and no creation folder. Real `nbops run` processes, real signals."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(autouse=True)
def no_template(tmp_path, monkeypatch):
    """An empty cache of store templates (run/newstore.py): the first creation is MLflow's own
    migration, made in the cache, so a kill meets it; after the next run nothing is left there."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    yield cache / "nbops"
    assert not _creating(cache / "nbops")


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


def _experiments(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage, workspace "
                           "FROM experiments").fetchall()


def _schema(db: Path) -> tuple:
    """The store's revision and each table's and index's definition, as a set of its lines: MLflow's
    own migrations write a table's constraints in an order that changes from one run to the next
    (alembic's batch mode; Python's hash seed)."""
    with sqlite3.connect(db) as con:
        objects = con.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        return (con.execute("SELECT version_num FROM alembic_version").fetchall(),
                [(name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
                 for name, sql in objects])


def test_a_store_made_from_the_template_is_the_one_mlflow_makes(tmp_path, monkeypatch, no_template):
    """The second store and every later one is a copy of the migrated template, with the Default
    experiment MLflow would have made where it is created: same schema, same rows, and MLflow's
    client logs into it, its Default experiment's artifacts under the creator's ./mlruns."""
    from mlflow.tracking import MlflowClient

    from nbops.run.newstore import create_sqlite

    for name in ("first", "copied", "mlflows"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "first")
    create_sqlite(f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}")  # makes the template
    [template] = no_template.glob("mlflow-*.db")
    monkeypatch.chdir(tmp_path / "copied")
    before = int(time.time() * 1000)
    create_sqlite("sqlite:///mlflow.db")
    monkeypatch.chdir(tmp_path / "mlflows")
    MlflowClient("sqlite:///mlflow.db").search_experiments()  # MLflow's own creation
    copied, mlflows = tmp_path / "copied" / "mlflow.db", tmp_path / "mlflows" / "mlflow.db"
    assert _schema(copied) == _schema(mlflows) == _schema(template)
    assert _experiments(copied) == [(0, "Default", str(tmp_path / "copied" / "mlruns" / "0"), "active", "default")]
    assert _experiments(mlflows) == [(0, "Default", str(tmp_path / "mlflows" / "mlruns" / "0"), "active", "default")]
    with sqlite3.connect(copied) as con:
        (created, updated), = con.execute("SELECT creation_time, last_update_time FROM experiments").fetchall()
    assert before <= created == updated <= int(time.time() * 1000)
    client = MlflowClient(f"sqlite:///{copied}")
    run = client.create_run("0")
    (tmp_path / "a.txt").write_text("a")
    client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    client.set_terminated(run.info.run_id)
    assert (tmp_path / "copied" / "mlruns" / "0" / run.info.run_id / "artifacts" / "a.txt").is_file()


def test_a_template_nbops_no_longer_reads_is_not_used(tmp_path, monkeypatch, no_template):
    """A template whose schema revision is not one nbops knows (a cache from another MLflow under
    the same name, a damaged file): the store is MLflow's own migration instead."""
    from nbops.run.newstore import create_sqlite

    monkeypatch.chdir(tmp_path)
    create_sqlite(f"sqlite:///{tmp_path / 'first.db'}")
    [template] = no_template.glob("mlflow-*.db")
    with sqlite3.connect(template) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    create_sqlite(f"sqlite:///{tmp_path / 'second.db'}")
    assert _schema(tmp_path / "second.db") == _schema(tmp_path / "first.db")  # MLflow's revision
    assert _experiments(tmp_path / "second.db") == [(0, "Default", str(tmp_path / "mlruns" / "0"), "active",
                                                     "default")]


def test_a_first_run_with_the_template_cached_imports_no_mlflow(project, no_template):
    """Once this user's template exists, a project's first `nbops run` makes its store from it and
    writes its run through the embedded store's writer: no `import mlflow` at all."""
    from nbops.run.newstore import create_sqlite

    create_sqlite(f"sqlite:///{project.parent / 'elsewhere.db'}")  # the template, made once
    assert list(no_template.glob("mlflow-*.db"))
    write_notebook(project / "a.ipynb", [("code", "x = 1")])
    script = ("import sys\nfrom nbops.cli.main import main\n"
              "rc = main(['run', 'a.ipynb', '-q'])\n"
              "print('RC', rc, 'MLFLOW', 'mlflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RC")]
    assert lines and lines[-1] == "RC 0 MLFLOW False", out.stdout + out.stderr
    assert _statuses(project / "mlflow.db") == ["FINISHED"]
    assert _experiments(project / "mlflow.db")[0][:3] == (0, "Default", str(project / "mlruns" / "0"))


def test_a_store_made_where_mlflow_server_set_its_artifact_root_is_mlflows_own(tmp_path, monkeypatch, no_template):
    """Where MLflow's server variable names an artifact root (nbops/_mlflow_private.py), MLflow
    puts a new store's Default experiment there, not in ./mlruns: the template's copy would
    differ, so MLflow creates that store itself."""
    from nbops._mlflow_private import SERVER_ARTIFACT_ROOT_VAR
    from nbops.run.newstore import create_sqlite

    monkeypatch.chdir(tmp_path)
    create_sqlite(f"sqlite:///{tmp_path / 'first.db'}")  # the template, made without the variable
    assert list(no_template.glob("mlflow-*.db"))
    served = tmp_path / "served"
    monkeypatch.setenv(SERVER_ARTIFACT_ROOT_VAR, str(served))
    create_sqlite(f"sqlite:///{tmp_path / 'second.db'}")
    assert _experiments(tmp_path / "second.db") == [(0, "Default", str(served / "0"), "active", "default")]


def test_a_cache_sqlite_cannot_open_leaves_the_store_to_mlflows_migration(tmp_path, monkeypatch):
    """The template only saves time: where the cache cannot hold it (here a cache path longer than
    sqlite opens, as a full or over-quota home fails it with sqlite's "disk I/O error"), the store
    is MLflow's own migration in place, and the cache keeps no template and no creation folder."""
    from nbops.run.newstore import create_sqlite

    deep = tmp_path.joinpath(*["d" * 100] * 6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(deep))
    monkeypatch.chdir(tmp_path)
    create_sqlite(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert _experiments(tmp_path / "mlflow.db") == [(0, "Default", str(tmp_path / "mlruns" / "0"), "active",
                                                     "default")]
    assert not list((deep / "nbops").glob("*"))


def test_another_hosts_creation_folder_is_left_to_it(project):
    """A folder shared between machines (an NFS home, a shared project disk): another host's
    creation, whose pid means nothing here, is never removed as abandoned; this host's is."""
    import hashlib
    import socket

    from nbops.run.newstore import CREATING_PREFIX, create_sqlite

    gone = subprocess.Popen(["true"])
    gone.wait()
    here = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]
    there = hashlib.sha256(b"another-host").hexdigest()[:12]
    ours = project / f"{CREATING_PREFIX}{gone.pid}-1-{here}-abcd"
    theirs = project / f"{CREATING_PREFIX}{gone.pid}-1-{there}-efgh"
    for folder in (ours, theirs):
        folder.mkdir()
        (folder / "mlflow.db").write_bytes(b"")
    create_sqlite(f"sqlite:///{project / 'mlflow.db'}")
    assert (project / "mlflow.db").is_file() and not ours.exists() and theirs.is_dir()
    shutil.rmtree(theirs)
