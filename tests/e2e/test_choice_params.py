"""Choice parameters (issue 23): a value outside a parameter's declared `# choices:` is refused by
`nbops run` and `nbops sweep` in one line, before any kernel starts or any MLflow run exists.

Before, `nbops run notebooks/X.ipynb -p model=xgboost` on a notebook made from the
classification template ran for 20 s and failed with a KeyError in the kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import commit_all

CHOICES = "logistic_regression, random_forest, gradient_boosting, svm, knn"


def _nbops(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, list[str]]:
    """`nbops ARGS` as a user runs it: (the process, seconds, the modules it imported)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbops", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - began
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    proc.stderr = "".join(line + "\n" for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    return proc, seconds, imported


def _nothing_started(root: Path, imported: list[str]) -> None:
    assert not (root / "mlflow.db").exists() and not (root / "mlruns").exists()  # nothing in MLflow
    assert not [p for p in root.joinpath("runs").rglob("*") if p.is_file()]  # no executed notebook
    for heavy in ("papermill", "nbclient", "mlflow"):  # no kernel was started, no run was created
        assert heavy not in imported, f"{heavy} was imported"


@pytest.mark.parametrize("args, value, suggestion", [
    (["run", "notebooks/exp.ipynb", "-p", "model=xgboost"], "'xgboost'", ""),
    (["run", "notebooks/exp.ipynb", "-f", "params.yaml"], "'svn'", "; did you mean 'svm'?"),
    (["sweep", "notebooks/exp.ipynb", "-p", "model=svm,xgboost"], "'xgboost'", ""),
])
def test_a_value_outside_the_templates_choices_is_one_line_and_nothing_runs(project, args, value, suggestion):
    proc, _, _ = _nbops(project, "new", "classification", "exp")
    assert proc.returncode == 0, proc.stderr
    (project / "params.yaml").write_text("model: svn\nC: 0.5\n")
    commit_all(project)

    proc, seconds, imported = _nbops(project, *args)

    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"nbops: error: notebooks/exp.ipynb: parameter 'model' got {value}, not one of its choices: "
        f"{CHOICES}{suggestion}"]
    assert "Traceback" not in proc.stderr
    assert seconds < 10, seconds  # ~0.3 s here; it was a 20 s kernel run
    _nothing_started(project, imported)


def test_a_value_among_the_choices_still_runs(project):
    proc, _, _ = _nbops(project, "new", "classification", "exp")
    assert proc.returncode == 0, proc.stderr
    commit_all(project)
    proc, _, _ = _nbops(project, "run", "notebooks/exp.ipynb", "-p", "model=knn", "--no-track", "--quiet")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "ok" in proc.stdout


def test_run_help_documents_the_choices_syntax(project):
    proc, _, _ = _nbops(project, "run", "--help")
    assert proc.returncode == 0
    assert 'model = "forest"  # choices: forest, svm' in proc.stdout
    proc, _, _ = _nbops(project, "templates")
    assert f"model: str = 'logistic_regression'  # choices: {CHOICES}" in proc.stdout
