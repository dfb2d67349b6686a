"""The version matrix tier (scripts/matrix.py, tests/matrix.txt) agrees with pyproject.toml: the
oldest set is each bounded dependency's lower bound, the newest set lies inside the bounds, every
listed test exists, and the weekly workflow that runs the matrix on the newest releases lints."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _matrix():
    spec = importlib.util.spec_from_file_location("matrix", REPO / "scripts" / "matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bounds() -> dict[str, tuple[str, str]]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    found = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\d.]+),<([\d.]+)", dep)
        if m:
            found[m.group(1)] = (m.group(2), m.group(3))
    return found


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_oldest_and_newest_sets_are_pyprojects_bounds():
    sets, bounds = _matrix().SETS, _bounds()
    bounds = {k: v for k, v in bounds.items() if k in {"mlflow", "papermill", "nbclient", "uvicorn"}}
    assert len(bounds) == 4, bounds
    oldest = dict(p.split("==") for p in sets["oldest"])
    newest = dict(p.split("==") for p in sets["newest"])
    assert set(oldest) == set(newest) == set(bounds)
    for name, (low, high) in bounds.items():
        assert _v(oldest[name])[:len(_v(low))] == _v(low), (name, oldest[name], low)
        assert _v(low) <= _v(newest[name]) < _v(high), (name, newest[name], high)
    assert sets["latest"] == list(oldest)  # the same four, unpinned


def test_every_listed_test_exists():
    listed = _matrix().tests()
    assert listed and all((REPO / path).is_file() for path in listed), listed


@pytest.mark.skipif(shutil.which("actionlint", path=str(REPO / ".venv" / "bin")) is None
                    and shutil.which("actionlint") is None, reason="actionlint is not installed")
def test_the_weekly_workflow_lints():
    exe = shutil.which("actionlint", path=str(REPO / ".venv" / "bin")) or shutil.which("actionlint")
    done = subprocess.run([exe, str(REPO / ".github" / "workflows" / "newest-deps.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
