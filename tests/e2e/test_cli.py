"""The installed `nbops` command, as a user runs it, on this repository and on a fresh project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, all_runs, commit_all

NBOPS = str(Path(sys.executable).with_name("nbops"))


def nbops(*args, cwd=REPO, env=None, timeout=600):
    return subprocess.run([NBOPS, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_help_and_version():
    for args in (["--help"], ["run", "--help"], ["new", "--help"]):
        done = nbops(*args)
        assert done.returncode == 0 and "usage: nbops" in done.stdout
    assert "NAME=VALUE" in nbops("run", "--help").stdout
    assert nbops("--version").stdout.startswith("nbops ")


def test_unknown_parameter_on_the_repo_notebooks_exits_2_without_a_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        done = nbops("run", str(nb.relative_to(REPO)), "-p", "no_such_param=1",
                     "--output-dir", str(tmp_path / "runs"), env={"MLFLOW_TRACKING_URI": uri})
        assert done.returncode == 2
        line = done.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert "unknown parameter 'no_such_param'" in line and "did you mean '" in line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_templates_lists_parameters():
    out = nbops("templates").stdout
    assert "classification" in out and "torch_classifier" in out and "[gpu: 1]" in out
    assert "seed: int = 42" in out


def test_new_then_run_both_templates_registers_models(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-q",
                    "--allow-empty", "-m", "init"], cwd=root, check=True)
    env = {"MLFLOW_TRACKING_URI": ""}
    done = nbops("new", "classification", "wine_knn", "-p", "dataset=wine", "-p", "model=knn",
                 cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    assert "created notebooks/wine_knn.ipynb" in done.stdout
    assert nbops("new", "torch_classifier", "digits_tiny", "-p", "epochs=5", "-p", "learning_rate=0.01",
                 cwd=root, env=env).returncode == 0
    assert nbops("new", "classification", "x", "-p", "modle=svm", cwd=root, env=env).returncode == 2
    sha = commit_all(root, "experiments")
    done = nbops("run", "notebooks/wine_knn.ipynb", "notebooks/digits_tiny.ipynb", cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wine-knn v1" in done.stdout and "digits-tiny v1" in done.stdout

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = {r.data.tags["nbops.notebook"]: r for r in all_runs(client)}
    assert set(runs) == {"notebooks/wine_knn.ipynb", "notebooks/digits_tiny.ipynb"}
    for run in runs.values():
        assert run.info.status == "FINISHED" and run.data.tags["nbops.git_sha"] == sha
        assert {"accuracy", "f1"} <= set(run.data.metrics)
    assert runs["notebooks/digits_tiny.ipynb"].data.tags["nbops.template"] == "torch_classifier"
    assert runs["notebooks/digits_tiny.ipynb"].data.params["epochs"] == "5"
    records = json.loads(open(client.download_artifacts(
        runs["notebooks/digits_tiny.ipynb"].info.run_id, "nbops/records.json")).read())
    assert records["device"] == "cpu"
    for name in ("wine-knn", "digits-tiny"):
        [version] = client.search_model_versions(f"name = '{name}'")
        assert version.tags["nbops.git_sha"] == sha and "metric.accuracy" in version.tags


def test_demo_notebooks_run_and_register(tmp_path):
    """What `make demo` does, into a scratch store: one FINISHED run per notebook in notebooks/."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    notebooks = sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("*.ipynb"))
    done = nbops("run", *notebooks, "--output-dir", str(tmp_path / "runs"),
                 env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stdout + done.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, uri)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    runs = all_runs(client)
    assert sorted(r.data.tags["nbops.notebook"] for r in runs) == notebooks
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["nbops.git_sha"] == head
        assert run.data.params and {"accuracy", "f1"} <= set(run.data.metrics)
        assert [a for a in client.list_artifacts(run.info.run_id, "notebook") if a.path.endswith(".ipynb")]
    models = client.search_registered_models()
    # every demo notebook names a model, and each run clears its gates: one version of each
    names = {json.loads((REPO / nb).read_text())["metadata"]["nbops"]["model"]["name"] for nb in notebooks}
    assert {m.name for m in models} == names and len(names) == len(notebooks)
    for model in models:
        [version] = client.search_model_versions(f"name = '{model.name}'")
        assert version.tags["nbops.git_sha"] == head and "metric.accuracy" in version.tags
    assert not (REPO / "notebooks" / "mlflow.db").exists()
