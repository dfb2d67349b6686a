"""`nbops sweep`'s grid: value lists split, typed and checked against the parameters cell."""

from __future__ import annotations

import pytest

from nbops.core.errors import ParameterError
from nbops.notebook.document import load, split_list
from nbops.run.sweep import grid_points, parse_grid
from tests.conftest import write_notebook


def sweep_notebook(root):
    return write_notebook(root / "notebooks" / "grid.ipynb", [
        ("code", "a = 1\nb = 0.5\nlabel = 'x'", ["parameters"]),
        ("code", "import nbops\nnbops.record('score', a + b)"),
    ])


def test_grid_parsing(tmp_path):
    nb = load(sweep_notebook(tmp_path))
    assert split_list("1, [2,3], 'a,b'") == ["1", "[2,3]", "'a,b'"]
    grid = parse_grid(nb, ["a=1,2", "label=x,y"], {"b": [0.5, 1]})
    assert grid == {"b": [0.5, 1.0], "a": [1, 2], "label": ["x", "y"]}
    assert len(grid_points(grid)) == 8
    assert grid_points(grid, 3, seed=1) == grid_points(grid, 3, seed=1) and len(grid_points(grid, 3, 1)) == 3
    with pytest.raises(ParameterError, match="did you mean 'a'"):
        parse_grid(nb, ["aa=1,2"], {})
    with pytest.raises(ParameterError, match="parameter 'a' expects int"):
        parse_grid(nb, ["a=1,x"], {})
    with pytest.raises(ParameterError, match="a sweep needs values"):
        parse_grid(nb, [], {})


def test_a_sweep_over_a_choice_parameter_is_checked_against_its_choices(tmp_path):
    path = write_notebook(tmp_path / "notebooks" / "pick.ipynb", [
        ("code", "model = 'forest'  # choices: forest, svm\ndepth = 3  # choices: 3, 5", ["parameters"]),
    ])
    nb = load(path)
    assert parse_grid(nb, ["model=forest,svm", "depth=3,5"], {}) == {"model": ["forest", "svm"], "depth": [3, 5]}
    said = f"{path}: parameter 'model' got 'xgboost', not one of its choices: forest, svm"
    with pytest.raises(ParameterError, match=said):
        parse_grid(nb, ["model=forest,xgboost"], {})
    with pytest.raises(ParameterError, match="parameter 'depth' got 4, not one of its choices: 3, 5"):
        parse_grid(nb, [], {"depth": [3, 4]})  # a grid file
