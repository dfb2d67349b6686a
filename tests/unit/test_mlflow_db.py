"""core/mlflow_db.py is the one door to MLflow's private storage: no other module opens an sqlite
connection; its check reads MLflow's version without importing mlflow; a store it does not know
is refused with a reason and said once (issue 24)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest

from nbops.core import mlflow_db
from tests.conftest import REPO


def test_only_the_seam_opens_sqlite_connections():
    opened = re.compile(r"sqlite3\s*\.\s*connect|from sqlite3 import")
    found = [str(p.relative_to(REPO)) for p in (REPO / "src" / "nbops").rglob("*.py")
             if opened.search(p.read_text(encoding="utf-8"))]
    assert found == ["src/nbops/core/mlflow_db.py"], found


def test_mlflow_version_is_mlflows_own_without_importing_it():
    from importlib.metadata import version

    assert mlflow_db.mlflow_version() == version("mlflow")
    code = ("import sys; from nbops.core import mlflow_db, sqlite_store, sqlite_registry, sqlite_writer; "
            "mlflow_db.mlflow_version(); mlflow_db.mlflow_supported(); print('mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _store(path, revision: str | None) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    if revision:
        con.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    con.commit()
    con.close()


@pytest.fixture
def quiet_state(monkeypatch):
    monkeypatch.setattr(mlflow_db, "_said", [])
    monkeypatch.setenv("NBOPS_VERBOSE", "1")


def test_an_unknown_revision_is_refused_and_said_once(tmp_path, capsys, quiet_state):
    db = tmp_path / "mlflow.db"
    _store(db, "ffffffffffff")
    for _ in range(3):
        with pytest.raises(mlflow_db.Unavailable, match="ffffffffffff"), mlflow_db.connect(db):
            pass
        with pytest.raises(mlflow_db.Unavailable), mlflow_db.connect(db, write=True):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "schema revision ffffffffffff is not one nbops was tested against" in lines[0]
    ok, detail = mlflow_db.verdict(db)
    assert not ok and "ffffffffffff" in detail


def test_a_known_revision_passes_and_nothing_is_said(tmp_path, capsys, quiet_state):
    db = tmp_path / "mlflow.db"
    _store(db, next(iter(mlflow_db.SUPPORTED_REVISIONS)))
    with mlflow_db.connect(db, write=True) as con:
        con.execute("CREATE TABLE t (x)")
    with mlflow_db.connect(db) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert capsys.readouterr().err == "" and mlflow_db.verdict(db)[0]


def test_quiet_without_verbose_and_no_store_is_never_made(tmp_path, capsys, quiet_state, monkeypatch):
    monkeypatch.delenv("NBOPS_VERBOSE")
    db = tmp_path / "mlflow.db"
    _store(db, None)  # no revision at all
    with pytest.raises(mlflow_db.Unavailable, match="none"), mlflow_db.connect(db):
        pass
    assert capsys.readouterr().err == "" and len(mlflow_db._said) == 1  # doctor says it
    with pytest.raises(mlflow_db.Unavailable), mlflow_db.connect(tmp_path / "absent.db", write=True):
        pass
    assert not (tmp_path / "absent.db").exists()
