"""`nbops run` refuses bad input before anything runs: one line, exit 2, no kernel, no MLflow
store, no runs folder."""

from __future__ import annotations

import json

import pytest

from nbops.cli.main import main
from tests.conftest import write_notebook


def classifier_notebook(root, name="iris.ipynb", data=None):
    """The parameters and metadata of tests/integration/test_run.py's notebook; its code never runs."""
    meta = {"model": {"name": "iris-test", "gates": ["accuracy >= 0.5"], "compare": "accuracy"}}
    if data:
        meta["data"] = data
    return write_notebook(root / "notebooks" / name, [
        ("markdown", "# Iris"),
        ("code", 'C = 1.0  # regularisation\nseed = 0\nlabel = "base"', ["parameters"]),
        ("code", "raise RuntimeError('a notebook refused before it runs never gets here')"),
    ], meta)


def test_bad_input_creates_no_run(project, capsys):
    nb_path = classifier_notebook(project)
    assert main(["run", str(nb_path), "-p", "seeed=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown parameter 'seeed'" in err and "did you mean 'seed'?" in err
    assert main(["run", str(nb_path), "-p", "C=strong"]) == 2
    assert "parameter 'C' expects float" in capsys.readouterr().err
    classifier_notebook(project, name="needs_data.ipynb", data=["data/missing.csv"])
    assert main(["run", "notebooks/needs_data.ipynb"]) == 2
    assert "data file 'data/missing.csv'" in capsys.readouterr().err
    assert main(["run", "notebooks/nope.ipynb"]) == 2
    assert "notebooks/nope.ipynb: no such notebook" in capsys.readouterr().err
    raw = json.loads(nb_path.read_text())
    raw["metadata"]["kernelspec"]["name"] = "cobol"
    nb_path.write_text(json.dumps(raw))
    assert main(["run", str(nb_path)]) == 2
    assert "no Jupyter kernel named 'cobol'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse rejects it before anything runs
        main(["run", "notebooks/iris.ipynb", "--timeout", "-1"])
    assert exit_.value.code == 2
    assert not (project / "mlflow.db").exists() and not (project / "runs").exists()


def test_an_execution_error_names_the_notebook_and_the_missing_kernel(project):
    """ExecutionError carries path, ename and evalue where they are known (core/errors.py)."""
    from nbops.core.config import load_settings
    from nbops.core.errors import ExecutionError, NbopsError
    from nbops.notebook.document import load
    from nbops.run.runner import check_kernels
    from nbops.run.spec import make_spec

    nb_path = classifier_notebook(project)
    raw = json.loads(nb_path.read_text())
    raw["metadata"]["kernelspec"]["name"] = "cobol"
    nb_path.write_text(json.dumps(raw))
    spec = make_spec(load_settings(project), load(nb_path), {})
    with pytest.raises(ExecutionError) as info:
        check_kernels([spec])
    exc = info.value
    assert isinstance(exc, NbopsError)
    assert (exc.path, exc.cell, exc.ename, exc.evalue) == (str(spec.notebook.path), None, "NoSuchKernel", "cobol")
