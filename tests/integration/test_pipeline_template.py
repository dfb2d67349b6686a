"""`nbops new pipeline NAME` (issue 25): prepare -> train -> evaluate from the shipped template,
run as a pipeline on real kernels: evaluate scores train's model on prepare's held-out split."""

from __future__ import annotations

import json

from nbops.cli.main import main
from tests.conftest import all_runs


def test_templates_lists_the_pipeline(project, capsys):
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "pipeline  (a pipeline: prepare -> train -> evaluate)" in out
    assert "    train.model: str = 'random_forest'" in out


def test_pipeline_template_runs_in_order(project, mlflow_client, capsys):
    assert main(["new", "pipeline", "churn", "-p", "dataset=wine", "-p", "model=logistic_regression"]) == 0
    folder = project / "notebooks" / "churn"
    assert sorted(p.name for p in folder.glob("*.ipynb")) == ["evaluate.ipynb", "prepare.ipynb", "train.ipynb"]
    evaluate = json.loads((folder / "evaluate.ipynb").read_text())
    assert evaluate["metadata"]["nbops"]["needs"] == ["prepare", "train"]
    assert 'dataset = "wine"' in "".join(json.loads((folder / "prepare.ipynb").read_text())["cells"][1]["source"])
    capsys.readouterr()

    assert main(["run", *map(str, sorted(folder.glob("*.ipynb"))), "--jobs", "2"]) == 0, capsys.readouterr()
    runs = all_runs(mlflow_client())
    children = {r.data.tags["nbops.notebook"]: r for r in runs if r.data.tags.get("mlflow.parentRunId")}
    assert sorted(children) == [f"notebooks/churn/{n}.ipynb" for n in ("evaluate", "prepare", "train")]
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert children["notebooks/churn/evaluate.ipynb"].data.metrics["test_accuracy"] > 0.8
    assert children["notebooks/churn/train.ipynb"].data.params["model"] == "logistic_regression"
    assert main(["new", "pipeline", "churn", "-p", "nope=1"]) == 2
