"""`--executor ray` where Ray is not installed: a one-line error naming the extra, before anything runs."""

from __future__ import annotations

import sys

from nbops.cli.main import main
from tests.conftest import write_notebook


def test_without_ray_the_flag_names_the_extra(project, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if nbops[ray] were not installed
    path = write_notebook(project / "notebooks" / "any.ipynb", [
        ("code", "n = 3", ["parameters"]),
        ("code", "import nbops\nnbops.record('square', n * n)"),
    ])
    assert main(["run", str(path), "--executor", "ray"]) == 2
    assert "pip install 'nbops[ray]'" in capsys.readouterr().err
    assert not (project / "mlflow.db").exists()
