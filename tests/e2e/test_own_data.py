"""From one's own data (issue 13 item 3): `nbops new classification churn --data data/churn.csv`
in a project `nbops init` made, on a CSV with numbers, a text column, missing values and a 0/1
target; `nbops run` registers a model (a preprocessing Pipeline), `nbops predict` scores the
file with it. Everything through the real CLI, into the project's real sqlite MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

BIN = Path(sys.executable).parent
ROWS = 300


def nbops(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # a data scientist's machine: not CI (where an `nbops init` project requires a tracking server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JPY_", "NBOPS_"))
           and k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    return subprocess.run([str(BIN / "nbops"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def churn_csv(path: Path) -> Path:
    """ROWS seeded customers: tenure, monthly charges, a text `plan`, missing values, a 0/1 target
    that depends on all three (so the model has something to learn from the text column)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    plan = rng.choice(["basic", "plus", "pro"], ROWS)
    tenure = rng.integers(1, 72, ROWS).astype(float)
    charges = rng.normal(60, 20, ROWS).round(2)
    score = (plan == "basic") * 1.5 - tenure / 24 + (charges - 60) / 20 + rng.normal(0, 0.5, ROWS)
    frame = pd.DataFrame({"tenure": tenure, "monthly_charges": charges, "plan": plan,
                          "target": (score > score.mean()).astype(int)})
    frame.loc[[3, 50, 120], "tenure"] = np.nan
    frame.loc[[10, 200], "plan"] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.timeout(900)
def test_new_from_own_csv_runs_registers_and_predicts(tmp_path, monkeypatch):
    import pandas as pd

    root = tmp_path / "proj"
    done = nbops("init", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = churn_csv(root / "data" / "churn.csv")

    # a missing file: exit 2, one line naming it, nothing written
    done = nbops("new", "classification", "churn", "--data", "data/nope.csv", cwd=root)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "data/nope.csv" in done.stderr
    assert "Traceback" not in done.stderr and not (root / "notebooks" / "churn.ipynb").exists()

    done = nbops("new", "classification", "churn", "--data", "data/churn.csv", cwd=root)
    assert done.returncode == 0, done.stderr
    nb = json.loads((root / "notebooks" / "churn.ipynb").read_text())
    assert nb["metadata"]["nbops"]["data"] == ["data/churn.csv"]
    params = "".join(next(c["source"] for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])))
    assert 'data_path = "../data/churn.csv"' in params and 'dataset = "churn"' in params

    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "churn")
    done = nbops("run", "notebooks/churn.ipynb", "--jobs", "1", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "churn v1" in done.stdout, done.stdout

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    [version] = client.search_model_versions("name = 'churn'")
    run = client.get_run(version.run_id)
    assert run.data.params["data_path"] == "../data/churn.csv" and run.data.metrics["accuracy"] >= 0.7

    # nbops's own loader reads the Pipeline without MLflow (skops with the model's trusted types)
    from nbops.core.config import load_settings
    from nbops.lifecycle import fastload
    from nbops.lifecycle.registry import Registry

    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    fast = fastload.load_sklearn(Registry(load_settings(root)).resolve("churn/1"))
    assert fast is not None, "a local Pipeline model must load through nbops's fast loader"
    model, columns = fast
    assert type(model).__name__ == "Pipeline" and "columntransformer" in model.named_steps
    assert [(c.name, c.kind) for c in columns] == [("tenure", "double"), ("monthly_charges", "double"),
                                                    ("plan", "string")]

    # promoted (`nbops predict churn` scores with churn@champion), `nbops predict` on the training
    # file (missing values in both kinds of column) and on rows with a plan the model never saw,
    # in a process that never imports mlflow
    done = nbops("models", "promote", "churn", "1", "--alias", "champion", cwd=root)
    assert done.returncode == 0, done.stderr
    truth = pd.read_csv(data)
    new = truth.drop(columns="target").head(4).assign(plan=["enterprise", None, "basic", "pro"])
    new.to_csv(root / "new.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))
           and k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    for src, dest in (("data/churn.csv", "out.csv"), ("new.csv", "new_out.csv")):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbops", "predict", "churn",
                               "--input", src, "--output", dest], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert not [line for line in done.stderr.splitlines() if line.rstrip().endswith("| mlflow")]
    scored = pd.read_csv(root / "out.csv")
    assert len(scored) == ROWS and set(scored["prediction"]) <= {0, 1}
    assert (scored["prediction"] == truth["target"]).mean() > 0.7
    assert (model.predict(truth.drop(columns="target")) == scored["prediction"]).all()
    assert set(pd.read_csv(root / "new_out.csv")["prediction"]) <= {0, 1}
