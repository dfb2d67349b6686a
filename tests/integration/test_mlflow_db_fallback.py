"""Every fast path into MLflow's private storage passes core/mlflow_db.py's one check, and on a
store it fails falls back to MLflow's client with exactly one line (`nbops -v`; none without it)
and MLflow's own answers (issue 24).

The store is made by real `nbops run`s (two registered versions of `clf`, champion and
challenger set by `nbops models promote`) and copied for each test. Two ways a check fails:
- the copy's schema revision broken (`UPDATE alembic_version`): MLflow itself refuses such a
  store ("out-of-date database schema"), so every command must give MLflow's refusal, in one
  line, with the store's rows untouched (before issue 24 the reads answered from it);
- a store at MLflow's head that this nbops was not tested against (what the next MLflow's
  schema looks like to this nbops). MLflow opens only its own head revision, so that needs an
  MLflow newer than nbops: here nbops's list of tested revisions is emptied instead
  (`SUPPORTED_REVISIONS`, the check's data), and every command must answer what MLflow's client
  answers (NBOPS_NO_FAST_REGISTRY: MLflow's client for everything).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from nbops.core import mlflow_db
from tests.lifecycle import FEATURES, MODEL, build_trained_project, cli

LINE = "MLflow's client reads and writes it (slower)"
REFUSAL = "out-of-date database schema"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return build_trained_project(tmp_path_factory.mktemp("seam") / "proj")


@pytest.fixture
def copy(project, tmp_path, monkeypatch):
    """A copy of the project (its store too); not verbose (`nbops -v` sets NBOPS_VERBOSE, put back
    after the test); nothing said yet."""
    root = tmp_path / "copy"
    shutil.copytree(project, root, symlinks=True)
    monkeypatch.setenv("NBOPS_VERBOSE", "")
    monkeypatch.delenv("NBOPS_NO_FAST_REGISTRY", raising=False)
    # the copy's own store, whatever an earlier test in this process (an xdist worker) left set
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(root)
    monkeypatch.setattr(mlflow_db, "_said", [])
    return root


def _uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def vcli(root: Path, *args: str) -> tuple[int, str, str]:
    """`nbops -v ARGS`: fallbacks said on stderr."""
    return cli(root, "-v", *args)


def _said(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if LINE in line]


def _plan_lines(stderr: str) -> list[str]:
    """`nbops plan`'s lines naming what runs and what is cached (with the run that has it)."""
    return [line for line in stderr.splitlines() if line.startswith(("run ", "cached "))]


def _dump(root: Path) -> list[str]:
    con = sqlite3.connect(root / "mlflow.db")
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _input(root: Path) -> Path:
    import pandas as pd

    path = root / "in.csv"
    pd.read_csv(root / "data" / "train.csv")[FEATURES].head(50).to_csv(path, index=False)
    return path


def test_a_broken_revision_gets_mlflows_refusal_in_one_line_and_no_write(copy):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    con = sqlite3.connect(copy / "mlflow.db")
    con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.commit()
    con.close()
    before = _dump(copy)
    with pytest.raises(MlflowException, match=REFUSAL):  # what MLflow answers on this store
        MlflowClient(_uri(copy), _uri(copy)).get_registered_model(MODEL)
    _input(copy)
    commands = [("models", "list", MODEL), ("models", "list"), ("plan", "--all"),
                ("models", "promote", MODEL, "2", "--alias", "champion"),
                ("models", "approve", MODEL, "2", "--by", "alice"),
                ("predict", f"{MODEL}/1", "--input", "in.csv", "--output", "out.csv", "-q"),
                ("run", "notebooks/clf.ipynb", "-p", "model=knn", "--quiet")]
    for args in commands:
        mlflow_db._said.clear()  # each command is a process of its own
        code, out, err = vcli(copy, *args)
        assert code == 2, (args, code, out, err)
        assert len(_said(err)) == 1 and "schema revision ffffffffffff" in _said(err)[0], (args, err)
        assert REFUSAL in out + err, (args, out, err)  # MLflow's words, as the client's
    assert _dump(copy) == before  # not a row written by any fast path


@pytest.fixture
def untested(copy, monkeypatch):
    """The copy's store as an MLflow newer than this nbops makes it (see the module's docstring)."""
    monkeypatch.setattr(mlflow_db, "SUPPORTED_REVISIONS", frozenset())
    return copy


def _mlflows(root: Path, *args: str) -> tuple[int, str, str]:
    """ARGS answered by MLflow's client alone (every fast path off)."""
    os.environ["NBOPS_NO_FAST_REGISTRY"] = "1"
    try:
        return cli(root, *args)
    finally:
        del os.environ["NBOPS_NO_FAST_REGISTRY"]


def test_reads_fall_back_once_and_answer_what_mlflows_client_answers(untested):
    code, out, err = cli(untested, "models", "list", MODEL)  # without -v: not said on stderr
    assert code == 0 and not _said(err) and len(mlflow_db._said) == 1  # (doctor says it)
    for args in [("models", "list", MODEL, "--format", "json"), ("models", "list", "--format", "json"),
                 ("plan", "--all"), ("models", "list", "nosuch")]:
        mlflow_db._said.clear()
        code, out, err = vcli(untested, *args)
        said = _said(err)
        assert len(said) == 1 and "is not one nbops was tested against" in said[0], (args, err)
        theirs = _mlflows(untested, *args)
        assert (code, out, _plan_lines(err)) == (theirs[0], theirs[1], _plan_lines(theirs[2])), args
    mlflow_db._said.clear()  # several reads in one process: still one line
    err = "".join(vcli(untested, "models", "list", MODEL)[2] for _ in range(3))
    assert len(_said(err)) == 1


def test_registry_writes_fall_back_once_and_land_as_mlflows(untested):
    from mlflow.tracking import MlflowClient

    code, out, err = vcli(untested, "models", "approve", MODEL, "2", "--by", "alice")
    assert code == 0, err
    code, out, err2 = vcli(untested, "models", "promote", MODEL, "2", "--alias", "champion", "--by", "bob")
    assert code == 0, err2
    assert len(_said(err + err2)) == 1, err + err2
    client = MlflowClient(_uri(untested), _uri(untested))
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == "2"
    assert client.get_model_version(MODEL, "2").tags["nbops.approved_by"] == "alice"
    listed = cli(untested, "models", "list", MODEL, "--format", "json")[1]
    assert listed == _mlflows(untested, "models", "list", MODEL, "--format", "json")[1]


def test_fastload_falls_back_to_mlflows_loading(untested):
    import mlflow
    import pandas as pd

    from nbops.core.config import load_settings
    from nbops.lifecycle import fastload, models
    from nbops.lifecycle.registry import Registry

    version = Registry(load_settings(untested)).resolve(f"{MODEL}/1")
    assert fastload.load_sklearn(version) is None  # the logged model's location is MLflow's to read
    loaded = models.load(version)
    X = pd.read_csv(_input(untested))
    mlflow.set_tracking_uri(_uri(untested))
    mlflow.set_registry_uri(_uri(untested))
    theirs = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    assert (loaded.predictor.predict(X) == theirs.predict(X)).all()
    assert len(mlflow_db._said) == 1


def test_the_run_writer_falls_back_once_and_mlflow_has_the_run(untested):
    from mlflow.tracking import MlflowClient

    code, out, err = vcli(untested, "run", "notebooks/clf.ipynb", "-p", "model=knn", "--quiet")
    assert code == 0, (out, err)
    said = _said(err)
    assert len(said) == 1 and "is not one nbops was tested against" in said[0], err
    client = MlflowClient(_uri(untested), _uri(untested))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              order_by=["attributes.start_time DESC"], max_results=1)
    assert runs[0].info.status == "FINISHED" and runs[0].data.params["model"] == "knn"
    assert "accuracy" in runs[0].data.metrics
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")].count("3") == 1


def test_doctor_says_which_path_it_takes(untested):
    from nbops.core.config import load_settings
    from nbops.lifecycle.doctor import diagnose

    saved = dict(os.environ)  # doctor sets MLflow's request timeouts for its own process
    try:
        fast = [c for c in diagnose(load_settings(untested)) if c.name == "fast path"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert len(fast) == 1 and fast[0].ok and "MLflow's client" in fast[0].detail and fast[0].hint
    assert "is not one nbops was tested against" in fast[0].detail


def test_an_untested_mlflow_falls_back_too(copy, monkeypatch):
    monkeypatch.setattr(mlflow_db, "SUPPORTED_MLFLOW", frozenset({"0.1"}))
    code, out, err = vcli(copy, "models", "list", MODEL, "--format", "json")
    assert len(_said(err)) == 1 and "nbops was tested against" in _said(err)[0], err
    assert (code, out) == _mlflows(copy, "models", "list", MODEL, "--format", "json")[:2]


@pytest.mark.parametrize("value", [None, "true", "TRUE", "True", "1", "false", "FALSE", "0", "", " true",
                                   "yes", "no", "on"])
def test_fastloads_pickle_guard_never_allows_what_mlflows_refuses(value, monkeypatch):
    """The fence around fastload's copy of MLflow's pickle guard: it loads only where MLflow's own
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get() allows without doubt."""
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION

    from nbops.lifecycle.fastload import _allowed

    if value is None:
        monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", value)
    try:
        mlflows = MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get()
    except ValueError:
        mlflows = None  # MLflow refuses the value itself
    assert _allowed() == (mlflows is True), (value, mlflows)
