"""Nothing lost: a real `mlflow server` (sqlite) killed -9 mid-batch of three notebooks run two at a
time; the kernels log locally first, so they never notice; nbops exits 4 with every run kept in
.nbops/spool; the server is restarted on its own database; `nbops sync` uploads; a second sync of
the same entries (restored from a copy, as after a sync killed before it removed them) duplicates
nothing. The server then holds every run exactly once, with every step of every metric, the
executed notebook, its HTML report and what the kernel logged, no RUNNING run, each model version
once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.run import spool
from tests.conftest import write_notebook
from tests.mlflow_server import MlflowServer

NBOPS = str(Path(sys.executable).with_name("nbops"))


# a cell that waits (up to 2 minutes) for the test to say the server is dead: no sleep of a guessed length
AWAIT_KILL = ("import pathlib, time\n"
              "for _ in range(600):\n"
              "    if pathlib.Path('../killed').exists():\n"
              "        break\n"
              "    time.sleep(0.2)")


def _cells(name: str) -> list:
    return [
        ("code", "import mlflow, pathlib, time\n"
                 "from sklearn.linear_model import LogisticRegression\n"
                 "for step in range(3):\n"
                 "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
                 "mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1]),"
                 " name='model')\n"
                 "mlflow.log_text('a figure', 'figures/curve.txt')\n"
                 f"pathlib.Path('../started-{name}').touch()"),
        ("code", AWAIT_KILL),
        ("code", "import nbops\nnbops.record('score', 0.9)"),
    ]


def _nbops(project: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([NBOPS, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def _kill_server_once_started(proc: subprocess.Popen, server: MlflowServer, markers: list[Path]) -> tuple[str, str]:
    """Kill SERVER once two of MARKERS exist (two notebooks waiting), tell them (a `killed` file
    beside the markers), then PROC's (stdout, stderr)."""
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts kernels slowly
        while sum(m.exists() for m in markers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(m.exists() for m in markers) == 2, proc.communicate()
        server.kill()
        (markers[0].parent / "killed").touch()
        return proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_server_killed_mid_batch_then_sync_twice(project, tmp_path):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    names = ["a", "b", "c"]
    for name in names:
        write_notebook(project / "notebooks" / f"{name}.ipynb", _cells(name),
                       nbops={"model": {"name": f"spooled-{name}", "gates": ["score >= 0.5"]}})
    server = MlflowServer(tmp_path / "server")
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env.update(MLFLOW_TRACKING_URI=server.uri, NBOPS_TRACKING_RETRY_S="5")
    try:
        proc = subprocess.Popen([NBOPS, "run", *(f"notebooks/{n}.ipynb" for n in names), "--jobs", "2",
                                 "--quiet"], cwd=project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # mid-batch: two notebooks waiting, the third not started
        out, err = _kill_server_once_started(proc, server, [project / f"started-{n}" for n in names])
        assert proc.returncode == 4, (out, err)
        assert "Traceback" not in out + err, err
        assert not [line for line in err.splitlines() if line.strip()], err  # the summary says it all
        spooled = sorted((project / ".nbops" / "spool").iterdir())
        assert len(spooled) == 3 and not any(p.name.startswith(".") for p in spooled), spooled
        assert out.count("not recorded: kept in .nbops/spool/") == 3, out
        assert "`nbops sync` uploads it" in out
        backup = tmp_path / "spool-copy"
        shutil.copytree(project / ".nbops" / "spool", backup)

        server.start()  # the same database: it never saw these runs
        write_notebook(project / "other.ipynb", [("code", "x = 1")])
        warned = _nbops(project, {**env, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, "run", "other.ipynb")
        assert warned.returncode == 0, (warned.stdout, warned.stderr)
        assert "3 run(s) not yet recorded are kept in .nbops/spool" in warned.stderr, warned.stderr
        first = _nbops(project, env, "sync")
        assert first.returncode == 0, (first.stdout, first.stderr)
        assert first.stdout.count("synced notebooks/") == 3, first.stdout
        assert first.stdout.count("registered spooled-") == 3, first.stdout
        assert not list((project / ".nbops" / "spool").iterdir())
        again = _nbops(project, env, "sync")
        assert again.returncode == 0 and "nothing to sync" in again.stdout, again.stdout
        # a sync killed after its uploads, before it removed the entries: the retry finds them;
        # and one killed right after it created a run (no `nbops.sync` tag): that run is redone
        shutil.rmtree(project / ".nbops" / "spool")
        shutil.copytree(backup, project / ".nbops" / "spool")
        client = MlflowClient(server.uri, server.uri)  # registry too: not the process-wide one an in-process test set
        some = json.loads(next(backup.glob("*/spool.json")).read_text())
        half = client.create_run(client.get_experiment_by_name(some["experiment"]).experiment_id,
                                 tags={"nbops.spool_id": spool.claim(some["claim_key"])}).info.run_id
        retried = _nbops(project, env, "sync")
        assert retried.returncode == 0, (retried.stdout, retried.stderr)
        assert retried.stdout.count("synced notebooks/") == 3, retried.stdout

        assert client.get_run(half).info.lifecycle_stage == "deleted"
        exp_ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(exp_ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
        assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
        synced = [r for r in runs if "nbops.spool_id" in r.data.tags]
        assert sorted(r.data.tags["nbops.notebook"] for r in synced) == [f"notebooks/{n}.ipynb" for n in names]
        assert len(runs) == 3  # three runs, nothing else (no partial run: logged locally first)
        for run in synced:
            assert run.info.status == "FINISHED", run.info
            history = client.get_metric_history(run.info.run_id, "loss")
            assert sorted((m.step, m.value) for m in history) == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
            assert run.data.metrics["score"] == 0.9
            executed = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
            assert any(p.endswith(".ipynb") for p in executed), executed
            assert any(p.endswith(".html") for p in executed), executed
            assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/curve.txt"]
            assert run.data.tags["mlflow.user"] and run.data.tags["nbops.git_sha"]
        for name in names:
            versions = client.search_model_versions(f"name = 'spooled-{name}'")
            assert len(versions) == 1, versions
            assert versions[0].run_id in {r.info.run_id for r in synced}
    finally:
        server.kill()


def test_server_killed_mid_sweep_keeps_the_points_and_exits_4(project, tmp_path):
    """A sweep whose server dies while its points run: exit 4 as `nbops run` (not 1 or 2), every
    point in the spool, one line each; `nbops sync` uploads them once the server is back."""
    write_notebook(project / "notebooks" / "s.ipynb", [
        ("code", "c = 1", ["parameters"]),
        ("code", "import pathlib\npathlib.Path(f'../started-{c}').touch()"),
        ("code", AWAIT_KILL),
        ("code", "import nbops\nnbops.record('score', c / 10)"),
    ])
    server = MlflowServer(tmp_path / "server")
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env.update(MLFLOW_TRACKING_URI=server.uri, NBOPS_TRACKING_RETRY_S="3")
    try:
        proc = subprocess.Popen([NBOPS, "sweep", "notebooks/s.ipynb", "-p", "c=1,2", "--jobs", "2", "--quiet"],
                                cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = _kill_server_once_started(proc, server, [project / f"started-{c}" for c in (1, 2)])
        assert proc.returncode == 4, (out, err)
        assert "Traceback" not in out + err, err
        assert out.count("not recorded: kept in .nbops/spool/") == 2, out
        assert len(list((project / ".nbops" / "spool").iterdir())) == 2
        server.start()
        synced = _nbops(project, env, "sync")
        assert synced.returncode == 0 and synced.stdout.count("synced notebooks/s.ipynb") == 2, synced.stdout
    finally:
        server.kill()


@pytest.mark.parametrize("linked", [False, True], ids=["plain", "linked-nbops-folder"])
def test_a_run_whose_entry_cannot_be_written_is_parked_whole_and_synced(project, tmp_path, linked):
    """The spool entry of a finished local run cannot be written (here its temporary folder's name
    is taken by a file, as a full disk fails the copy of what the kernel logged): the local run is
    parked whole, never swept, listed by `sync --list`, and the next `nbops sync` uploads all of it
    (the kernel's metric steps, artifact and model, nbops's records and notebook), not a thin
    record; also where `.nbops` is a link (MLflow names the local run's files by resolved paths)."""
    from mlflow.tracking import MlflowClient

    if linked:
        elsewhere = tmp_path / "elsewhere"
        if (project / ".nbops").exists():
            shutil.move(project / ".nbops", elsewhere)
        elsewhere.mkdir(exist_ok=True)
        (project / ".nbops").symlink_to(elsewhere)

    write_notebook(project / "notebooks" / "p.ipynb", [
        ("code", "import mlflow, os, pathlib\n"
                 "for step in range(3):\n"
                 "    mlflow.log_metric('loss', 1.0 / (step + 1), step=step)\n"
                 "mlflow.log_text('a figure', 'figures/curve.txt')\n"
                 "from sklearn.linear_model import LogisticRegression\n"
                 "mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1]),"
                 " name='model')\n"
                 "run = pathlib.Path(os.environ['MLFLOW_TRACKING_URI'].removeprefix('sqlite:///')).parent\n"
                 "(run.parent / ('.tmp-' + run.name.removeprefix('.run-'))).write_text('taken')"),
        ("code", "import nbops\nnbops.record('score', 0.9)"),
    ])
    server = MlflowServer(tmp_path / "server")
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env.update(MLFLOW_TRACKING_URI=server.uri)
    spooled = project / ".nbops" / "spool"
    try:
        ran = _nbops(project, env, "run", "notebooks/p.ipynb", "--quiet")
        assert ran.returncode == 4 and "Traceback" not in ran.stdout + ran.stderr, (ran.stdout, ran.stderr)
        assert "not recorded: kept in " in ran.stdout and "spool/.parked-" in ran.stdout, ran.stdout
        [parked] = spooled.glob(".parked-*")
        swept = _nbops(project, env, "runs", "gc")  # sweeps the local runs of dead nbops processes
        assert swept.returncode == 0 and parked.is_dir(), (swept.stdout, swept.stderr)
        listed = _nbops(project, env, "sync", "--list")
        assert "1 run(s) wait" in listed.stdout and "notebooks/p.ipynb  FINISHED" in listed.stdout, listed.stdout
        for taken in spooled.glob(".tmp-*"):
            taken.unlink()  # the disk has room again
        synced = _nbops(project, env, "sync")
        assert synced.returncode == 0 and "synced notebooks/p.ipynb" in synced.stdout, (synced.stdout, synced.stderr)
        assert not list(spooled.iterdir())
        client = MlflowClient(server.uri)
        [run] = client.search_runs([client.get_experiment_by_name("notebooks/p").experiment_id])
        assert run.info.status == "FINISHED" and run.data.metrics["score"] == 0.9
        assert sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")) == \
            [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
        assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/curve.txt"]
        assert any(a.path.endswith(".ipynb") for a in client.list_artifacts(run.info.run_id, "notebook"))
        assert "nbops.parked_without" not in run.data.tags
        [model] = client.search_logged_models(experiment_ids=[run.info.experiment_id])
        assert model.source_run_id == run.info.run_id
    finally:
        server.kill()
