"""`nbops setup`: configure a clone for notebooks (pre-commit hooks, nbdime drivers, nbstripout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbops.core.errors import ConfigError, GitError

STEPS = (
    ("pre-commit hooks", ["pre-commit", "install"]),
    ("nbdime diff and merge drivers", ["nbdime", "config-git", "--enable"]),
    ("nbstripout git filter", ["nbstripout", "--install"]),
)


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not path:
        raise ConfigError(f"'{name}' is not installed", hint="pip install nbops (it depends on it)")
    return path


def setup_clone(root: Path) -> list[str]:
    """Run each step in the repository at `root`; returns what was done."""
    if not (root / ".git").exists():
        raise GitError(f"{root} is not a git repository", hint="run `git init` first")
    done = []
    for what, (tool, *args) in STEPS:
        result = subprocess.run([_tool(tool), *args], cwd=root, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise ConfigError(f"installing the {what} failed: {detail[-1] if detail else result.returncode}")
        done.append(what)
    return done
