"""A model's gates may name a metric of another notebook of its pipeline (issue 25):
`evaluate.test_accuracy >= 0.5` in train's metadata registers train's model only once evaluate
has recorded a test accuracy that holds."""

from __future__ import annotations

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook

TRAIN = """import mlflow, nbops
from sklearn.dummy import DummyClassifier
nbops.record('train_accuracy', 1.0)
mlflow.sklearn.log_model(DummyClassifier().fit([[0]], [0]), name='model', pip_requirements=['scikit-learn'])
"""


def pipeline(root):
    folder = root / "notebooks" / "gated"
    train = write_notebook(folder / "train.ipynb", [("code", "acc = 0.9", ["parameters"]), ("code", TRAIN)],
                           {"model": {"name": "gated", "gates": ["train_accuracy >= 0.5",
                                                                 "evaluate.test_accuracy >= 0.5"]}})
    evaluate = write_notebook(folder / "evaluate.ipynb", [
        ("code", "acc = 0.9", ["parameters"]),
        ("code", "import nbops\nfrom nbops import kit\nkit.upstream('train')\nnbops.record('test_accuracy', acc)")],
        {"needs": ["train"]})
    return [str(train), str(evaluate)]


def test_gate_on_evaluate_metric_registers_train_model(project, mlflow_client, capsys):
    paths = pipeline(project)
    assert main(["run", *paths, "-p", "acc=0.2"]) == 0
    assert "evaluate.test_accuracy" in capsys.readouterr().out  # the note: the gate did not hold
    client = mlflow_client()
    assert client.search_model_versions("name = 'gated'") == []

    assert main(["run", *paths]) == 0
    out = capsys.readouterr().out
    assert "gated v1" in out, out
    [version] = client.search_model_versions("name = 'gated'")
    train = client.get_run(version.run_id)
    assert train.data.tags["nbops.notebook"] == "notebooks/gated/train.ipynb"
    assert train.data.metrics["evaluate.test_accuracy"] == 0.9
    assert len([r for r in all_runs(client) if r.data.tags.get("nbops.pipeline")]) == 2
