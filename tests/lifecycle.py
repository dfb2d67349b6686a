"""Build a real project with registered model versions, for the model lifecycle tests.

`build_trained_project(root)` writes a git project whose notebook is the `classification`
template reading `data/train.csv` (the kernel runs in `notebooks/`) (made here, seeded: 6 numeric
features f0..f5 and a `target`),
runs it through `nbops run` once per model kind (each run registers a version of `clf`), and
sets `clf@champion` to version 1 (knn) and `clf@challenger` to version 2 (random forest) through `nbops models promote`.
Everything goes through the real CLI in a subprocess, into a real sqlite MLflow store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FEATURES = [f"f{i}" for i in range(6)]
MODEL = "clf"


def make_data(path: Path, rows: int = 1500, seed: int = 0, shift: dict[str, float] | None = None):
    """A seeded classification table; `shift` adds that many standard deviations to a feature."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=len(FEATURES), n_informative=4,
                               n_redundant=0, random_state=seed)
    frame = pd.DataFrame(X, columns=FEATURES)
    for name, sds in (shift or {}).items():
        frame[name] = frame[name] + sds * frame[name].std()
    frame["target"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def nbops(root: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    proc = subprocess.run([sys.executable, "-m", "nbops", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbops {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def build_trained_project(root: Path, kinds: tuple[str, ...] = ("knn", "random_forest"),
                          registry: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "lifecycle"\n\n[tool.nbops]\nruns_dir = "runs"\n' + registry)
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n.nbops/\n")
    make_data(root / "data" / "train.csv")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "test")
    nbops(root, "new", "classification", "clf", "-p", "data_path=../data/train.csv")
    # name the model; the template's own gate (accuracy >= 0.8) stays
    import json

    path = root / "notebooks" / "clf.ipynb"
    nb = json.loads(path.read_text())
    nb["metadata"]["nbops"]["model"]["name"] = MODEL
    nb["metadata"]["nbops"]["data"] = ["data/train.csv"]  # its digest is logged with each run
    path.write_text(json.dumps(nb, indent=1))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "experiment")
    for kind in kinds:
        nbops(root, "run", "notebooks/clf.ipynb", "-p", f"model={kind}", "--jobs", "1", "--quiet")
    nbops(root, "models", "promote", MODEL, "1", "--alias", "champion")
    if len(kinds) > 1:
        nbops(root, "models", "promote", MODEL, "2", "--alias", "challenger")
    return root


def cli(root: Path, *args: str) -> tuple[int, str, str]:
    """`nbops ARGS` in this process, in ROOT: (exit code, stdout, stderr). Much cheaper than a
    subprocess once mlflow is imported (~2 s an import); the behaviour is the same `main`."""
    import contextlib
    import io

    from nbops.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    saved = {k: os.environ.pop(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID") if k in os.environ}
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(cwd)
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()
