"""MLflow's settings (MLFLOW_* variables) are written to the process environment in one place,
core/store.py's `mlflow_settings` (issue 24: retries used to be written to os.environ here and there)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from nbops.core.store import QUIET_MLFLOW, RETRY_BUDGET, bounded_retries, mlflow_settings

SRC = Path(__file__).resolve().parents[2] / "src" / "nbops"
WRITERS = ("update", "setdefault", "pop", "putenv")


def _environ_writes(tree: ast.AST) -> list[int]:
    """Line numbers of `os.environ[...] = ...` and `os.environ.update/setdefault/...(...)`."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITERS:
            if ast.unparse(node.func.value) in ("os.environ", "os"):
                lines.append(node.lineno)
    return lines


def test_only_mlflow_settings_writes_mlflow_variables():
    found = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for line in _environ_writes(ast.parse(text)):
            source = text.splitlines()[line - 1]
            if "MLFLOW" in source and path.relative_to(SRC).as_posix() != "core/store.py":
                found.append(f"{path.relative_to(SRC)}:{line}: {source.strip()}")
    assert not found, "write MLflow's settings with core.store.mlflow_settings:\n" + "\n".join(found)


@pytest.fixture
def clean_env(monkeypatch):
    for key in (*RETRY_BUDGET, *QUIET_MLFLOW):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_a_users_setting_is_kept_unless_overridden(clean_env):
    clean_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    assert bounded_retries()["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == RETRY_BUDGET["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    mlflow_settings({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, override=True)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


def test_the_scan_sees_a_write(tmp_path):
    tree = ast.parse("import os\nos.environ['MLFLOW_X'] = '1'\nos.environ.setdefault('MLFLOW_Y', '2')\n")
    assert _environ_writes(tree) == [2, 3]
