"""Installable nbops: the wheel and sdist `make dist` builds, checked by twine, carry the templates,
CI files and pre-commit config as real files (symlinks in a checkout), and the wheel installed
into a fresh virtual environment runs `nbops init x && cd x && nbops run notebooks/*.ipynb`
without the source tree.

Kept fast and offline: the fresh venv gets nbops from the wheel only, and borrows its
dependencies (MLflow, papermill, ...) from the dev venv's site-packages through a .pth line (a
plain path: the dev venv's own .pth files, among them the editable install's path to src/, are
not processed there).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
SHIPPED = REPO / "src" / "nbops" / "data"
CI_VARS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI")


def shipped_files() -> set[str]:
    """The package-data files as the checkout holds them (through the data/ symlinks)."""
    out = set()
    for folder, dirs, files in os.walk(SHIPPED, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".ipynb_checkpoints")]
        out |= {"nbops/data/" + (Path(folder) / f).relative_to(SHIPPED).as_posix() for f in files}
    return out


def sh(*args: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist, then the wheel built from that sdist (as `python -m build` does), into a temp folder;
    --no-isolation reuses the dev venv's setuptools instead of installing it again."""
    out = tmp_path_factory.mktemp("dist")
    done = sh(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_dist_has_the_shipped_files_as_real_files_and_passes_twine(dist):
    [wheel], [sdist] = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    done = sh(BIN / "twine", "check", "--strict", wheel, sdist)
    assert done.returncode == 0 and done.stdout.count("PASSED") == 2, done.stdout + done.stderr
    expected = shipped_files()
    assert {"nbops/data/precommit.yaml", "nbops/data/ci/github/review.yml",
            "nbops/data/ci/github/review-comment.yml", "nbops/data/ci/github/retrain.yml",
            "nbops/data/ci/gitlab/.gitlab-ci.yml", "nbops/data/templates/classification.ipynb"} <= expected
    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i for i in zf.infolist() if i.filename.startswith("nbops/data/")}
        assert set(infos) == expected
        for name, info in infos.items():
            assert not stat.S_ISLNK(info.external_attr >> 16), f"{name} is a symlink in the wheel"
            assert zf.read(name) == (SHIPPED / name.removeprefix("nbops/data/")).read_bytes()
        # the lab's frontend extension, which `nbops lab` adds to JupyterLab's extension path
        lab = [n for n in zf.namelist() if n.startswith("nbops/lab/labextensions/")]
        assert sorted(lab) == ["nbops/lab/labextensions/@nbops/lab/package.json",
                               "nbops/lab/labextensions/@nbops/lab/static/remoteEntry.js"], lab
        entry_points = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "nbops = nbops.cli.main:main" in zf.read(entry_points).decode()
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1]: m for m in tf.getmembers() if "/src/nbops/data/" in m.name}
        files = {name.removeprefix("src/"): m for name, m in members.items() if not m.isdir()}
        assert set(files) == expected
        assert all(m.isfile() for m in files.values()), [n for n, m in files.items() if not m.isfile()]


def test_wheel_in_a_fresh_venv_inits_and_runs_a_project(dist, tmp_path):
    venv = tmp_path / "venv"
    assert sh(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    [wheel] = list(dist.glob("*.whl"))
    done = sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    env = {k: v for k, v in os.environ.items()
           if k not in (*CI_VARS, "PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")
           and not k.startswith(("NBOPS_", "COVERAGE_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    where = sh(python, "-c", "import nbops, sys; print(nbops.__file__); print(sys.path)", env=env)
    module, path = where.stdout.splitlines()
    assert module.startswith(str(venv)) and str(REPO / "src") not in path, where.stdout

    done = sh(venv / "bin" / "nbops", "init", "x", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    project = tmp_path / "x"
    assert (project / ".github" / "workflows" / "review-comment.yml").is_file()
    assert not any(p.is_symlink() for p in project.rglob("*"))
    from nbops import __version__

    assert f'dependencies = ["nbops=={__version__}"]' in (project / "pyproject.toml").read_text()
    # the project's dependency resolves to this wheel, as `pip install -e .` in its CI would
    done = sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--find-links",
              dist, "--no-build-isolation", "-e", project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    # outside CI an empty MLFLOW_TRACKING_URI means unset: the embedded store, with a note
    done = sh("bash", "-c", "nbops run notebooks/*.ipynb", cwd=project,
              env={**env, "MLFLOW_TRACKING_URI": ""}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "note: MLFLOW_TRACKING_URI is empty: using the embedded store sqlite:///mlflow.db" in done.stderr
    assert "example" in done.stdout and (project / "mlflow.db").is_file()
    assert list((project / "runs").rglob("*.ipynb"))

    # the same project in CI with no tracking secret: one line naming it, before any kernel
    done = sh("bash", "-c", "nbops run notebooks/*.ipynb", cwd=project,
              env={**env, "CI": "true", "MLFLOW_TRACKING_URI": ""}, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "MLFLOW_TRACKING_URI is empty" in done.stderr
