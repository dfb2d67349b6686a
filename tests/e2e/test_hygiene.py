"""Git hygiene: `nbops setup` in a fresh clone, and the repo's own pre-commit hooks, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, git

VENV_BIN = str(Path(sys.executable).parent)


def test_setup_installs_hooks_drivers_and_filter(project):
    shutil.copy(REPO / ".pre-commit-config.yaml", project)
    done = subprocess.run([f"{VENV_BIN}/nbops", "setup"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "installed pre-commit hooks" in done.stdout
    assert (project / ".git" / "hooks" / "pre-commit").is_file()
    assert "nbdiffdriver" in git(project, "config", "diff.jupyternotebook.command")
    assert "nbstripout" in git(project, "config", "filter.nbstripout.clean")


def test_setup_outside_git_is_a_clear_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    done = subprocess.run([f"{VENV_BIN}/nbops", "setup"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "is not a git repository" in done.stderr


def test_pre_commit_passes_on_the_repo(tmp_path):
    """The repo's tracked files in a fresh git repo: every hook passes, with no network."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    clone = tmp_path / "clone"
    for rel in files.stdout.splitlines():
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "PRE_COMMIT_HOME": str(tmp_path / "pc-cache")}
    done = subprocess.run([f"{VENV_BIN}/pre-commit", "run", "--all-files"], cwd=clone,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Passed") == 3
