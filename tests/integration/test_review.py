"""`nbops review --run`: the changed notebooks run on real kernels and their metrics are compared
with the base commit's run in MLflow."""

from __future__ import annotations

import json

from nbops.cli.main import main
from tests.conftest import commit_all, write_notebook


def test_review_run_compares_metrics_with_the_base_run(project, mlflow_client):
    """Base metrics come from the run of the notebook at the base commit; head runs are new,
    in a review experiment, and never registered."""
    path = write_notebook(project / "notebooks" / "score.ipynb", [
        ("code", "value = 1.0", ["parameters"]),
        ("code", "import nbops\nnbops.record('score', value)\nnbops.record('constant', 7)"),
    ], {"model": {"name": "score-model", "gates": ["score >= 1.5"]}})
    commit_all(project, "base")
    assert main(["run", str(path)]) == 0  # the base run, tracked at the base commit
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "value = 2.5"
    path.write_text(json.dumps(nb))
    commit_all(project, "head")

    assert main(["review", "--base", "HEAD~1", "--out", "D", "--run"]) == 0
    md = (project / "D" / "review.md").read_text()
    assert "`value: 1.0 -> 2.5`" in md
    assert "| score ↑ | 1 | 2.5 | +1.5 better |" in md  # the gate says higher is better
    assert "| constant | 7 | 7 | +0 |" in md
    assert "- gate `score >= 1.5`: holds" in md
    client = mlflow_client()
    review_exps = [e for e in client.search_experiments() if e.name.startswith("review ")]
    assert len(review_exps) == 1
    assert client.search_registered_models() == []
