"""`nbops sweep`: a 2x3 grid, one parent run and six children, the best point registered."""

from __future__ import annotations

import pytest

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook

CODE = """import mlflow, nbops
from sklearn.dummy import DummyClassifier
if a == 2 and b == 0.3:
    raise ValueError('fail on purpose')
nbops.record('score', a + b)
mlflow.sklearn.log_model(DummyClassifier().fit([[0]], [0]), name='model',
                         pip_requirements=['scikit-learn'])
"""


def sweep_notebook(root):
    return write_notebook(root / "notebooks" / "grid.ipynb", [
        ("code", "a = 1\nb = 0.5\nlabel = 'x'", ["parameters"]),
        ("code", CODE),
    ], {"model": {"name": "sweep-model", "compare": "score", "gates": ["score >= 0"]}})


def test_grid_sweep_parent_children_and_best_model(project, mlflow_client, capsys):
    path = sweep_notebook(project)
    code = main(["sweep", str(path), "-p", "a=1,2", "-p", "b=0.1,0.2,0.3", "--jobs", "2"])
    out = capsys.readouterr().out
    assert code == 1, out  # one point failed on purpose
    assert "cell 2: ValueError: fail on purpose" in out
    assert "best: point 5 (a=2, b=0.2)" in out and "registered sweep-model v1" in out

    client = mlflow_client()
    runs = all_runs(client)
    parents = [r for r in runs if r.data.tags.get("nbops.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 6 and len(runs) == 7
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    points = sorted((c.data.params["a"], c.data.params["b"], c.info.status) for c in children)
    assert points == [("1", "0.1", "FINISHED"), ("1", "0.2", "FINISHED"), ("1", "0.3", "FINISHED"),
                      ("2", "0.1", "FINISHED"), ("2", "0.2", "FINISHED"), ("2", "0.3", "FAILED")]
    assert all(c.data.params["label"] == "x" for c in children)
    assert parent.data.params["grid.a"] == "[1, 2]"
    assert parent.data.metrics["best.score"] == pytest.approx(2.2)
    [version] = client.search_model_versions("name = 'sweep-model'")
    best = next(c for c in children if c.data.params == {"a": "2", "b": "0.2", "label": "x"})
    assert version.run_id == best.info.run_id == parent.data.tags["nbops.best_run_id"]


def test_random_points_and_no_register(project, mlflow_client, capsys):
    path = sweep_notebook(project)
    assert main(["sweep", str(path), "-p", "a=1", "-p", "b=0.1,0.2,0.25,0.4", "--random", "2",
                 "--seed", "3", "--no-register"]) == 0
    assert "registration off" in capsys.readouterr().out
    client = mlflow_client()
    assert len([r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId")]) == 2
    assert client.search_registered_models() == []
