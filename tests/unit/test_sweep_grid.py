"""`nbops sweep`'s grid: value lists split, typed and checked against the parameters cell."""

from __future__ import annotations

import pytest

from nbops.core.errors import ParameterError
from nbops.notebook.document import load
from nbops.run.sweep import _split_values, grid_points, parse_grid
from tests.conftest import write_notebook


def sweep_notebook(root):
    return write_notebook(root / "notebooks" / "grid.ipynb", [
        ("code", "a = 1\nb = 0.5\nlabel = 'x'", ["parameters"]),
        ("code", "import nbops\nnbops.record('score', a + b)"),
    ])


def test_grid_parsing(tmp_path):
    nb = load(sweep_notebook(tmp_path))
    assert _split_values("1, [2,3], 'a,b'") == ["1", "[2,3]", "'a,b'"]
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
