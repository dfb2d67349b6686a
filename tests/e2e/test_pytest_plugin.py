"""`pytest --nbops`: real pytest subprocesses on a throwaway project (and on this repository's
notebooks), each notebook in a real kernel through nbops's runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_notebook

PROJECT_TOML = '[project]\nname = "demo"\n\n[tool.nbops]\nruns_dir = "runs"\n'
PARAMS = ("code", "n = 1  # a parameter the smoke test overrides\n", ["parameters"])
RECORD = ("code", "import nbops\nnbops.record('accuracy', 0.3 * n)\nnbops.record('n', n)\n")


def pytest_run(cwd: Path, tmp: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """A real `python -m pytest` in CWD, its temporary files under TMP (pytest's default basetemp
    is shared by every session of this user, and a new session prunes old ones)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "MLFLOW_")) and k != "NBOPS_TRACKING_URI"}
    basetemp = tmp / f"basetemp-{len(list(tmp.glob('basetemp-*')))}"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


def outcomes(out: str) -> dict[str, int]:
    """pytest's closing line ('1 failed, 2 passed, 1 error in 3.2s') as {'failed': 1, ...}."""
    last = out.strip().splitlines()[-1]
    return {word.rstrip("s"): int(n) for n, word in re.findall(r"(\d+) (passed|failed|errors?)", last)}


@pytest.fixture
def proj(tmp_path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(PROJECT_TOML)
    return root


def test_passing_notebooks_pass_and_an_unmet_expectation_fails_naming_it(proj):
    # smoke params applied (n == 3 holds only with them); a notebook without `test` runs at its defaults
    write_notebook(proj / "notebooks" / "good.ipynb", [PARAMS, RECORD],
                   nbops={"test": {"params": {"n": 3}, "expect": ["accuracy >= 0.5", "n == 3"]}})
    write_notebook(proj / "notebooks" / "plain.ipynb", [PARAMS, RECORD])
    write_notebook(proj / "notebooks" / "weak.ipynb", [
        PARAMS, RECORD, ("code", "nbops.record('loss', float('nan'))\nnbops.record('label', 'cat')\n")],
        nbops={"test": {"params": {"n": 2}, "expect": ["n >= 1", "accuracy >= 0.99", "loss < 1",
                                                       "label > 0", "f1 > 0"]}})

    done = pytest_run(proj, proj.parent, "--nbops", "-rA")  # no paths: the project's notebooks/ folder
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert outcomes(out) == {"passed": 2, "failed": 1}, out
    assert "PASSED notebooks/good.ipynb::smoke" in out and "PASSED notebooks/plain.ipynb::smoke" in out
    assert "FAILED notebooks/weak.ipynb::smoke" in out
    assert "notebooks/weak.ipynb: expectation 'accuracy >= 0.99' failed: accuracy = 0.6" in out, out
    assert "notebooks/weak.ipynb: expectation 'loss < 1' failed: loss = nan is not a finite number" in out
    assert "notebooks/weak.ipynb: expectation 'label > 0' failed: label = \"cat\" is not a number" in out
    assert ("notebooks/weak.ipynb: expectation 'f1 > 0' failed: 'f1' was not recorded "
            "(records: accuracy, label, loss, n)") in out
    assert "expectation 'n >= 1'" not in out  # the one that holds is not reported
    assert "Traceback" not in out  # a test failure, not a crash of the plugin
    assert not (proj / "mlflow.db").exists() and not (proj / "runs").exists()  # tracking off: nothing left

    # without --nbops the plugin is inert: notebooks are not collected, no kernel starts
    plain = pytest_run(proj, proj.parent, "notebooks")
    assert plain.returncode == 5, plain.stdout + plain.stderr  # "no tests ran"


def test_a_raising_cell_is_reported_with_its_cell_and_source(proj):
    write_notebook(proj / "one" / "broken.ipynb", [
        PARAMS,
        ("markdown", "# counted in cell numbers, like nbops run does"),
        ("code", "x = n\ny = 2\nraise ValueError(f'boom {x}')\nz = 3\n"),
    ])
    write_notebook(proj / "nbs" / "deep.ipynb", [("code", "import json\n\njson.loads('{not json')\n")])
    write_notebook(proj / "nbs" / "typo.ipynb", [PARAMS, RECORD], nbops={"test": {"params": {"m": 3}}})
    (proj / "nbs" / "test_plain.py").write_text("def test_ordinary():\n    assert True\n")

    (proj / "nbs" / "malformed.ipynb").write_text('{"cells": [}', encoding="utf-8")

    # no --continue-on-collection-errors: a notebook that cannot be run is one failing item,
    # and every other notebook still runs (issue 23)
    done = pytest_run(proj, proj.parent, "--nbops", "-rA", "one/broken.ipynb", "nbs")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert outcomes(out) == {"passed": 1, "failed": 4}, out  # the ordinary test in the folder still runs
    assert "FAILED nbs/malformed.ipynb::smoke - nbs/malformed.ipynb" in out, out
    # the failing cell like a test failure: where, what, the source around the failing line
    assert "one/broken.ipynb: cell 3: ValueError: boom 1" in out, out
    assert ">    3 | raise ValueError(f'boom {x}')" in out
    assert "     1 | x = n" in out and "     4 | z = 3" in out
    assert "E   ValueError: boom 1" in out
    assert "executed notebook: " in out and "broken.ipynb" in out
    # raised inside a library: the cell's line and the library's frames
    assert "nbs/deep.ipynb: cell 1: JSONDecodeError: Expecting property name" in out, out
    assert ">    3 | json.loads('{not json')" in out
    assert "traceback below the cell:" in out and "json/decoder.py" in out
    # a smoke parameter the notebook does not have: one line at collection, naming it
    assert ("nbs/typo.ipynb: unknown parameter 'm'; did you mean 'n'? (in metadata.nbops.test.params)"
            in out), out


def test_runs_under_xdist_each_notebook_in_its_own_kernel(proj):
    probe = ("code", "import os\nfrom pathlib import Path\n"
                     "Path('../seen').mkdir(exist_ok=True)\n"
                     "Path('../seen', Path.cwd().name + str(n)).write_text("
                     "f\"{os.getpid()} {os.environ.get('PYTEST_XDIST_WORKER', '')}\")\n")
    for i in range(4):
        write_notebook(proj / f"nb{i}" / "nb.ipynb", [PARAMS, probe, RECORD],
                       nbops={"test": {"params": {"n": i + 1}, "expect": ["accuracy > 0.2"]}})
    write_notebook(proj / "nb_fail" / "nb.ipynb", [PARAMS, ("code", "1 / 0\n")])

    done = pytest_run(proj, proj.parent, "--nbops", "-n", "2", *[f"nb{i}" for i in range(4)], "nb_fail")
    out = done.stdout + done.stderr
    assert outcomes(out) == {"passed": 4, "failed": 1}, out
    assert "nb_fail/nb.ipynb: cell 2: ZeroDivisionError: division by zero" in out  # reported across workers
    seen = {p.name: p.read_text().split() for p in (proj / "seen").iterdir()}
    assert sorted(seen) == [f"nb{i}{i + 1}" for i in range(4)]  # each at its own smoke params
    assert len({pid for pid, _ in seen.values()}) == 4  # a fresh kernel each
    assert {worker for _, worker in seen.values()} == {"gw0", "gw1"}  # both workers ran notebooks


def test_the_repository_notebooks_pass(tmp_path):
    done = pytest_run(REPO, tmp_path, "--nbops", "-n", "2", "-q", timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    names = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert outcomes(out) == {"passed": len(names)}, out
