"""`--executor ray` against a real Ray cluster started by the test on loopback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook

ray = pytest.importorskip("ray", reason="the Ray executor is tested where nbops[ray] is installed")
BIN = Path(sys.executable).parent


def notebook(root, name, gpu=0):
    return write_notebook(root / "notebooks" / f"{name}.ipynb", [
        ("code", "n = 3", ["parameters"]),
        ("code", "import os, nbops\nnbops.record('square', n * n)\nnbops.record('pid', os.getpid())"),
    ], {"resources": {"gpu": gpu}} if gpu else {})


def test_two_notebooks_run_as_ray_tasks_and_are_tracked(project, mlflow_client, ray_address, capsys):
    paths = [str(notebook(project, "one")), str(notebook(project, "two"))]
    assert main(["run", *paths, "-p", "n=4", "--executor", "ray", "--ray-address", ray_address]) == 0, \
        capsys.readouterr()
    client = mlflow_client()
    runs = all_runs(client)
    assert sorted(r.data.tags["nbops.notebook"] for r in runs) == ["notebooks/one.ipynb", "notebooks/two.ipynb"]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.params["n"] == "4"
        assert run.data.metrics["square"] == 16.0
        [artifact] = [a.path for a in client.list_artifacts(run.info.run_id, "notebook") if a.path.endswith(".ipynb")]
        with open(client.download_artifacts(run.info.run_id, artifact)) as f:
            executed = json.load(f)
        assert any("square" in json.dumps(c.get("outputs", [])) for c in executed["cells"])
    executed_here = list((project / "runs").rglob("*.ipynb"))
    assert len(executed_here) == 2  # the executed notebooks came back to the driver


def test_gpu_notebook_on_a_cluster_without_gpus_fails_clearly(project, ray_address, capsys):
    path = notebook(project, "needs_gpu", gpu=1)
    assert main(["run", str(path), "--executor", "ray", "--ray-address", ray_address]) == 2
    err = capsys.readouterr().err
    assert "asks for 1 GPU(s), but the Ray cluster" in err and "has 0" in err
    assert not (project / "mlflow.db").exists()


def test_credentials_reach_a_worker_that_lacks_the_drivers_environment(project, mlflow_client,
                                                                       ray_address, monkeypatch, capsys):
    """The cluster was started before these variables existed, as a remote worker would be: MLflow's
    auth, the artifact store's credentials and `[tool.nbops] kernel_env` names reach the kernel."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'runs_dir = "runs"\n', 'runs_dir = "runs"\nkernel_env = "TEAM_*"\n'))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-of-the-team")
    monkeypatch.setenv("TEAM_DATA_TOKEN", "t0k")
    monkeypatch.setenv("NOT_FORWARDED", "x")
    write_notebook(project / "notebooks" / "env.ipynb", [
        ("code", "import os, nbops\n"
                 "nbops.record('user', float(os.environ.get('MLFLOW_TRACKING_USERNAME') == 'alice'))\n"
                 "nbops.record('s3', float(os.environ.get('AWS_ACCESS_KEY_ID') == 'key-of-the-team'))\n"
                 "nbops.record('team', float(os.environ.get('TEAM_DATA_TOKEN') == 't0k'))\n"
                 "nbops.record('other', float('NOT_FORWARDED' in os.environ))"),
    ])
    assert main(["run", "notebooks/env.ipynb", "--executor", "ray", "--ray-address", ray_address]) == 0, \
        capsys.readouterr()
    [run] = all_runs(mlflow_client())
    assert run.data.metrics == {"user": 1.0, "s3": 1.0, "team": 1.0, "other": 0.0}
