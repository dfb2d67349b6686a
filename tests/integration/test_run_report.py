"""The run's report as a data scientist opens it (issue 23): the executed notebook and its HTML
page carry no TqdmWarning and no ModelInfo repr, the page is `notebook/<notebook>.html` (as the
README says) on the embedded store and in a spool entry, the executed notebook is a normal file
(umask honoured), and the classification template labels its confusion matrix with class names.
Real kernels, a real MLflow store."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from nbops.cli.main import main
from tests.conftest import all_runs, commit_all, write_notebook


@pytest.fixture
def umask_027():
    old = os.umask(0o027)  # not the usual 022: the mode must follow the umask, not be 0644 fixed
    yield 0o640
    os.umask(old)


def _texts(nb: dict) -> str:
    """Every output of an executed notebook as text (streams, text/plain, errors)."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
            parts.append(out.get("evalue", ""))
    return "\n".join(parts)


def test_the_classification_templates_report(project, mlflow_client, capsys, umask_027):
    assert main(["new", "classification", "exp"]) == 0, capsys.readouterr()
    commit_all(project)
    assert main(["run", "notebooks/exp.ipynb"]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    run_id = run.info.run_id
    executed = project / run.data.tags["nbops.output"]

    # a normal file, as the umask says (mkstemp made it 0600), here and as MLflow's artifact
    assert stat.S_IMODE(executed.stat().st_mode) == umask_027
    arts = sorted(a.path for a in client.list_artifacts(run_id, "notebook"))
    assert arts == sorted(["notebook/exp.html", f"notebook/{executed.name}"])  # README: notebook/<name>.html
    logged = Path(client.download_artifacts(run_id, f"notebook/{executed.name}", str(project / "dl")))
    assert stat.S_IMODE(logged.stat().st_mode) == umask_027

    shown = _texts(json.loads(executed.read_text()))
    assert "TqdmWarning" not in shown and "IProgress" not in shown
    assert sys.prefix not in shown  # no path of the venv
    assert "ModelInfo" not in shown  # the log_model cell's value is not displayed
    with open(client.download_artifacts(run_id, "notebook/exp.html"), encoding="utf-8") as f:
        page = f.read()
    assert "TqdmWarning" not in page and "ModelInfo" not in page and sys.prefix not in page
    assert "log_confusion_matrix" in page and "data:image/png;base64" in page


def test_a_spooled_runs_page_has_the_same_name(project, capsys):
    """keep.artifacts makes the entry of a run logged locally first (a server, or a store that
    went away): its page is notebook/<notebook>.html too."""
    from nbops.core.config import load_settings
    from nbops.run import keep
    from nbops.run.runner import plan_runs, run_specs

    nb = write_notebook(project / "notebooks" / "kept.ipynb", [
        ("code", "x = 1", ["parameters"]), ("code", "print('kept', x)")])
    commit_all(project)
    settings = load_settings()
    [outcome] = run_specs(settings, plan_runs(settings, [nb], {}), track=False)
    assert outcome.ok, outcome.result.error
    folder = project / "entry"
    folder.mkdir()
    files = keep.artifacts(outcome.result, folder, False, {})
    output = outcome.result.output_path
    assert sorted(files) == sorted(["notebook/kept.html", f"notebook/{output.name}"])
    assert "kept 1" in files["notebook/kept.html"].read_text(encoding="utf-8")


@pytest.mark.parametrize("dataset, names", [
    ("iris", ["setosa", "versicolor", "virginica"]),
    ("breast_cancer", ["malignant", "benign"]),
])
def test_the_templates_confusion_matrix_names_the_classes(project, monkeypatch, dataset, names):
    """The classification template's own code cells, run in this process (its kit helpers and
    scikit-learn for real, logging into a real store), label the matrix's axes by class name."""
    from nbops.core.files import SHIPPED

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    monkeypatch.setenv("NBOPS_NO_TRACK", "1")  # the model is not logged: the figure is
    template = json.loads((SHIPPED / "templates" / "classification.ipynb").read_text())
    namespace: dict = {}
    for cell in template["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # noqa: S102 - the shipped template's own code
            if "parameters" in cell["metadata"].get("tags", []):
                namespace["dataset"] = dataset
    import mlflow

    try:
        axes = namespace["matrix"].axes[0]
        assert [t.get_text() for t in axes.get_xticklabels()] == names
        assert [t.get_text() for t in axes.get_yticklabels()] == names
    finally:
        mlflow.end_run()
