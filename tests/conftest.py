"""Shared fixtures: a throwaway git project with notebooks, and a reader for its MLflow store.

The tiers: tests/unit holds the pure tests (no kernel, no MLflow store on disk, no server, no Ray,
no subprocess of nbops), the inner loop `make test-fast` runs. Everything under tests/integration
and tests/e2e starts at least one of those, and is marked `slow` here, by its folder;
tests/server runs the daily commands against a team stack (PostgreSQL, S3, `mlflow server`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SLOW_TIERS = ("integration", "e2e", "server")
# `make test` runs pytest-xdist with `--dist loadgroup`: each group runs on one worker, in order.
# A test file is a group of its own (its module-scoped fixtures, a trained project or a server,
# are made once); these share one worker across files: tests/server's session stack (PostgreSQL,
# S3, `mlflow server`) started once; chromium driven by one test at a time; Ray clusters, whose
# head and workers take ports beyond the free one the fixture picks.
SHARED_GROUPS = {
    "browser": ("e2e/test_lab.py", "e2e/test_review_browser.py", "e2e/test_review_safety_browser.py"),
    "ray": ("integration/test_ray.py", "integration/test_pipeline_ray.py"),
}


def pytest_configure(config):
    """Every `mlflow server` the tests start (tests/mlflow_server.py, the server tier's stack, the
    CI pipelines' servers) runs without MLflow 3's job execution, as `nbops lab` runs its UI
    (lab/config.py): otherwise each server starts a job runner and seven huey consumers, eight
    Python processes importing MLflow, which nbops never uses, on a 2-core machine."""
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # pytest-xdist's marker, known also where xdist is not installed (the matrix tier's venvs)
    config.addinivalue_line("markers", "xdist_group(name): the tests of a group share one xdist worker")
    config._nbops_kernels = _untraced_python3_kernel()  # type: ignore[attr-defined]


def pytest_unconfigure(config):
    if getattr(config, "_nbops_kernels", ""):
        shutil.rmtree(config._nbops_kernels, ignore_errors=True)


def _untraced_python3_kernel() -> str:
    """The `python3` kernel of the notebooks `nbops run` executes in the tests: ipykernel's own
    kernelspec (written by ipykernel, its argv's interpreter `python`, which jupyter_client
    replaces with the one that starts it), first on JUPYTER_PATH, with coverage's subprocess
    variables emptied. coverage.py's `patch = ["subprocess"]` starts in every Python process the
    tests start; such a kernel traced everything it ran (its imports of scikit-learn and MLflow
    at about 1.4 times the cost) and never wrote its data: `nbops run` ends its kernels at once,
    before the exit coverage saves at. Kernels that end gracefully (the lab's, jupyter_client's
    in test_kernel_project) do write theirs: those tests use `native_kernels(env)`."""
    from ipykernel.kernelspec import write_kernel_spec

    if _ours(os.environ.get("JUPYTER_PATH", "")):  # a pytest-xdist worker: its controller's
        return ""
    folder = tempfile.mkdtemp(prefix=KERNELS_PREFIX)
    spec = Path(folder) / "kernels" / "python3"
    spec.parent.mkdir()
    write_kernel_spec(spec, overrides={
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "env": {"COVERAGE_PROCESS_CONFIG": "", "COVERAGE_PROCESS_START": ""}})
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("JUPYTER_PATH")]))
    return folder


KERNELS_PREFIX = "nbops-kernels-"


def _is_ours(folder: str) -> bool:
    """FOLDER is one of the untraced-kernel folders `_untraced_python3_kernel` writes."""
    return Path(folder).name.startswith(KERNELS_PREFIX)


def _ours(jupyter_path: str) -> bool:
    return any(_is_ours(p) for p in jupyter_path.split(os.pathsep))


def native_kernels(env: dict[str, str]) -> dict[str, str]:
    """ENV (a copy) whose `python3` kernel is ipykernel's installed one, measured by coverage
    (for kernels that end gracefully and so save their data)."""
    out = dict(env)
    parts = [p for p in out.get("JUPYTER_PATH", "").split(os.pathsep) if p and not _is_ours(p)]
    if parts:
        out["JUPYTER_PATH"] = os.pathsep.join(parts)
    else:
        out.pop("JUPYTER_PATH", None)
    return out


def xdist_group(rel: Path) -> str:
    """The pytest-xdist group of the test file REL (relative to tests/)."""
    if rel.parts[0] == "server":
        return "server"
    for group, files in SHARED_GROUPS.items():
        if rel.as_posix() in files:
            return group
    return rel.as_posix()


# tryfirst: pytest-xdist's worker reads the `xdist_group` marks in its own hook of this name, and
# pluggy calls the last-registered plugin first; xdist registers its worker plugin after this
# conftest, so without tryfirst it looked before the marks were given: no test had a group and
# every file was spread over the workers, each building the file's module fixtures (a trained
# project, a server, the team's stack, a Ray cluster) again. (pytest <9.2 too: pyproject.toml.)
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/integration and tests/e2e `slow`: each one starts a kernel, a
    server, Ray or an nbops subprocess (a pure test belongs in tests/unit). And give each its
    pytest-xdist group (`xdist_group`, used only under `--dist loadgroup`); the "ray" group's
    tests are marked `ray` too (`make test` runs them on their own, after the rest)."""
    for item in items:
        try:
            rel = item.path.resolve().relative_to(TESTS)
        except ValueError:  # a test outside tests/
            continue
        if rel.parts[0] in SLOW_TIERS:
            item.add_marker(pytest.mark.slow)
        group = xdist_group(rel)
        item.add_marker(pytest.mark.xdist_group(group))
        if group == "ray":
            item.add_marker(pytest.mark.ray)
    items.sort(key=_schedule_rank)


# The order `make test` hands the groups out in (with --no-loadscope-reorder; xdist's own order is
# by number of tests, which put the unit files' hundreds of quick tests first and the long groups
# of few tests, tests/server's ten minutes above all, last, running alone at the end while the
# other workers sat idle): the longest first, then e2e, integration and unit, whose many short
# tests fill the workers' ends. A stable sort: a file's own order is kept.
FIRST_GROUPS = ("server", "browser")
TIER_ORDER = ("e2e", "integration", "unit")


def _schedule_rank(item) -> tuple[int, int]:
    try:
        rel = item.path.resolve().relative_to(TESTS)
    except ValueError:
        return (2, 0)
    group = xdist_group(rel)
    if group in FIRST_GROUPS:
        return (0, FIRST_GROUPS.index(group))
    return (1, TIER_ORDER.index(rel.parts[0]) if rel.parts[0] in TIER_ORDER else len(TIER_ORDER))


def write_notebook(path: Path, cells: list[tuple[str, str] | tuple[str, str, list[str]]],
                   nbops: dict | None = None, outputs: bool = False) -> Path:
    """cells: (cell_type, source[, tags]); a plain nbformat 4.5 notebook written as JSON."""
    nb_cells = []
    for i, cell in enumerate(cells):
        kind, source = cell[0], cell[1]
        tags = cell[2] if len(cell) > 2 else []
        c = {"cell_type": kind, "id": f"c{i}", "metadata": {"tags": tags} if tags else {},
             "source": source}
        if kind == "code":
            c["outputs"] = []
            c["execution_count"] = None
        nb_cells.append(c)
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    if nbops is not None:
        nb["metadata"]["nbops"] = nbops
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty nbops project (pyproject.toml, git repo with one commit) as the working directory."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.nbops]\nruns_dir = "runs"\n\n'
        '[tool.ruff.lint]\nselect = ["E", "F"]\n'  # ruff's own defaults change between versions
    )
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n.nbops/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "test")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    monkeypatch.chdir(root)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    return root


def commit_all(root: Path, message: str = "work") -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=test", "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def mlflow_client(project):
    def make():
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{project / 'mlflow.db'}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    return make


def all_runs(client):
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps]) if exps else []


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory):
    """A project with `clf` v1 (champion) and v2 (challenger), built once per session.

    Read-only: tests that move aliases or register versions build their own with
    `tests.lifecycle.build_trained_project`.
    """
    from tests.lifecycle import build_trained_project

    return build_trained_project(tmp_path_factory.mktemp("lifecycle") / "proj")
