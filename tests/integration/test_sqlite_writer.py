"""core/sqlite_writer.py writes MLflow's embedded store without MLflow: every write is compared
with the same call through MLflow's own client (core/run_store.ClientStore), both read back with
MlflowClient; the cases the writer hands to MLflow get MLflow's answers; `nbops run` on the
embedded store does not import mlflow in its own process."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import time

import pytest

from nbops.core.mlflow_db import SUPPORTED_MLFLOW, SUPPORTED_REVISIONS, Unavailable, mlflow_version
from nbops.core.run_store import ClientStore, LazyClient, open_store
from nbops.core.sqlite_writer import UPLOADING_PREFIX, SqliteWriter
from tests.conftest import write_notebook


@pytest.fixture
def store(tmp_path):
    """A store MLflow created (its schema, its migrations): (uri, MlflowClient, ClientStore)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()  # creates the schema
    return uri, client, ClientStore(client)


def no_fallback():
    raise AssertionError("the writer handed a plain case to MLflow")


def test_installed_mlflow_schema_is_one_the_writer_knows(store):
    uri, _, _ = store
    revision = sqlite3.connect(uri[len("sqlite:///"):]).execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert revision in SUPPORTED_REVISIONS, (
        f"MLflow's schema is now {revision}: run this module's comparisons against it and add it to "
        "SUPPORTED_REVISIONS in core/mlflow_db.py (until then nbops writes through MLflow's client)")
    import mlflow

    assert mlflow_version() == mlflow.__version__  # read without importing it, the same
    assert ".".join(mlflow.__version__.split(".")[:2]) in SUPPORTED_MLFLOW, (
        f"MLflow is now {mlflow.__version__}: run the fast paths' comparisons against it and add it to "
        "SUPPORTED_MLFLOW in core/mlflow_db.py (until then nbops reads and writes through MLflow's client)")


def test_unknown_schema_or_missing_store_is_left_to_mlflow(store, tmp_path):
    uri, _, _ = store
    with pytest.raises(Unavailable):
        SqliteWriter(f"sqlite:///{tmp_path / 'none.db'}", no_fallback)
    assert not (tmp_path / "none.db").exists()  # never created by the writer
    con = sqlite3.connect(uri[len("sqlite:///"):])
    con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.commit()
    with pytest.raises(Unavailable, match="revision"):
        SqliteWriter(uri, no_fallback)


def _record(s, name: str, location: str, artifacts) -> str:
    """The calls `nbops run` makes for one run, in its order."""
    exp = s.experiment_id(name, location)
    assert s.experiment_id(name, location) == exp  # found, not created twice
    run_id = s.create_run(exp, {"mlflow.user": "ana", "nbops.notebook": "notebooks/a.ipynb",
                                "mlflow.source.type": "NOTEBOOK", "nbops.heartbeat": "1"}, "a C=0.5", 1_700_000_000_000)
    s.log_params(run_id, {"C": "0.5", "layers": "[1, 2]", "note": "ünïcode"})
    s.log_params(run_id, {"C": "0.5"})  # the same value again: accepted, as MLflow does
    s.log_metrics(run_id, {"accuracy": 0.9, "loss": 2.0}, 1_700_000_000_500, step=3)
    s.log_metrics(run_id, {"accuracy": 0.8, "f1": 1}, 1_700_000_000_100, step=0)  # earlier: not latest
    s.log_metrics(run_id, {"accuracy": 0.9, "loss": 2.0}, 1_700_000_000_500, step=3)  # a duplicate
    s.set_tags(run_id, {"nbops.duration_s": "1.25", "nbops.heartbeat": "2"})
    s.log_dict(run_id, {"accuracy": 0.9, "when": time.gmtime(0)}, "nbops/records.json")
    s.log_artifact(run_id, str(artifacts / "a.ipynb"), "notebook")
    s.log_artifact(run_id, str(artifacts / "a.html"), "notebook")
    s.set_terminated(run_id, "FAILED")
    return run_id


def _rows(db: str, run_id: str) -> dict:
    """Every column of every row MLflow's tables hold for RUN_ID and its experiment (ids, times
    and the experiment's name and folder replaced), as MLflow's entities do not show them all."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    exp_id = con.execute("SELECT experiment_id FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()[0]
    out = {}
    for table, key in (("runs", "run_uuid"), ("tags", "run_uuid"), ("params", "run_uuid"), ("metrics", "run_uuid"),
                       ("latest_metrics", "run_uuid"), ("experiments", "experiment_id"),
                       ("experiment_tags", "experiment_id")):
        rows = []
        value = exp_id if key == "experiment_id" else run_id
        for row in con.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)):
            d = dict(row)
            for col in ("run_uuid", "experiment_id", "start_time", "end_time", "creation_time", "last_update_time",
                        "name", "artifact_location", "artifact_uri"):
                if col in d and not (table in ("tags", "params", "metrics", "latest_metrics") and col == "name"):
                    d[col] = "<set>" if d[col] is not None else None
            rows.append(tuple(sorted(d.items())))
        out[table] = sorted(rows)
    return out


def _view(client, run_id: str) -> dict:
    run = client.get_run(run_id)
    exp = client.get_experiment(run.info.experiment_id)
    files = {}
    for folder in ("notebook", "nbops"):
        for f in client.list_artifacts(run_id, folder):
            local = client.download_artifacts(run_id, f.path)
            files[f.path] = (f.file_size, open(local, "rb").read())
    return {
        "status": run.info.status, "run_name": run.info.run_name, "user_id": run.info.user_id,
        "start_time": run.info.start_time, "ended": run.info.end_time is not None,
        "lifecycle": run.info.lifecycle_stage,
        "artifact_uri": run.info.artifact_uri.replace(run_id, "<id>").replace(exp.artifact_location, "<exp>"),
        "params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags,
        "history": {k: [(m.value, m.step, m.timestamp) for m in client.get_metric_history(run_id, k)]
                    for k in ("accuracy", "loss", "f1")},
        "experiment": (exp.lifecycle_stage, dict(exp.tags), exp.artifact_location.rsplit("/", 1)[-1]),
        "files": files,
    }


def test_writer_writes_what_mlflow_writes(store, tmp_path):
    uri, client, mlflow_store = store
    artifacts = tmp_path / "files"
    artifacts.mkdir()
    (artifacts / "a.ipynb").write_text(json.dumps({"cells": []}))
    (artifacts / "a.html").write_text("<html>é</html>", encoding="utf-8")
    writer = SqliteWriter(uri, no_fallback)
    ours = _record(writer, "notebooks/a", (tmp_path / "arts" / "same").as_uri(), artifacts)
    theirs = _record(mlflow_store, "notebooks/b", (tmp_path / "arts2" / "same").as_uri(), artifacts)
    mine, reference = _view(client, ours), _view(client, theirs)
    assert mine == reference
    db = uri[len("sqlite:///"):]
    assert _rows(db, ours) == _rows(db, theirs)  # every column, including those entities hide
    assert not [p for p in (tmp_path / "arts").rglob("*") if p.name.startswith(UPLOADING_PREFIX)]
    assert mine["metrics"] == {"accuracy": 0.9, "loss": 2.0, "f1": 1.0}  # the latest by step
    assert len(mine["files"]) == 3
    # MLflow's search reads what the writer wrote (latest metrics, params, tags)
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(exp_ids, "metrics.accuracy > 0.85 and params.C = '0.5' "
                                        "and tags.`nbops.duration_s` = '1.25'")
    assert {r.info.run_id for r in found} == {ours, theirs}


def test_the_cases_left_to_mlflow_get_mlflow_answers(store, tmp_path):
    from mlflow.exceptions import MlflowException

    uri, client, mlflow_store = store
    handed: list[str] = []

    def fallback():
        handed.append("mlflow")
        return mlflow_store

    writer = SqliteWriter(uri, fallback)
    exp = writer.experiment_id("notebooks/c", (tmp_path / "arts").as_uri())
    run_id = writer.create_run(exp, {"mlflow.user": "ana"}, "c", 1)
    writer.log_metrics(run_id, {"nan": float("nan"), "inf": math.inf}, 5)  # MLflow stores these its way
    writer.set_tags(run_id, {"long": "x" * 9000})  # MLflow truncates (or refuses) a long value
    writer.log_params(run_id, {"C": "1"})
    with pytest.raises(MlflowException, match="C"):  # a changed param: MLflow's refusal
        writer.log_params(run_id, {"C": "2"})
    writer.set_tags(run_id, {"mlflow.runName": "renamed"})  # also the run's name
    assert handed  # these went through MLflow
    run = client.get_run(run_id)
    assert math.isnan(run.data.metrics["nan"]) and run.data.metrics["inf"] == pytest.approx(1.7976931348623157e308)
    assert run.info.run_name == "renamed" and run.data.params == {"C": "1"}
    long = run.data.tags["long"]
    reference = mlflow_store.create_run(exp, {}, "ref", 1)
    mlflow_store.set_tags(reference, {"long": "x" * 9000})
    assert long == client.get_run(reference).data.tags["long"]
    writer.delete_run(run_id)
    with pytest.raises(MlflowException, match="active"):  # a deleted run: MLflow's words
        writer.set_terminated(run_id, "FINISHED")


def test_nbops_run_on_the_embedded_store_does_not_import_mlflow(project):
    write_notebook(project / "notebooks" / "a.ipynb", [("code", "n = 1", ["parameters"]), ("code", "print(n * 2)")])
    # the first run: no store yet, MLflow creates it (and its schema); the second, in a fresh process
    first = subprocess.run([sys.executable, "-m", "nbops.cli.main", "run", "notebooks/a.ipynb"], cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    script = ("import sys\nfrom nbops.cli.main import main\n"
              "rc = main(['run', 'notebooks/a.ipynb', '-p', 'n=3'])\n"
              "print('RC', rc, 'MLFLOW', 'mlflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RC")]
    assert lines[-1] == "RC 0 MLFLOW False", out.stdout + out.stderr
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("notebooks/a")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    kinds = {a.path.rsplit(".", 1)[-1] for a in client.list_artifacts(runs[0].info.run_id, "notebook")}
    assert kinds == {"ipynb", "html"}
    assert runs[0].data.params == {"n": "3"} and runs[1].data.params == {"n": "1"}
    assert set(runs[0].data.tags) == set(runs[1].data.tags)  # the same record either way


def test_settings_only_mlflow_honours_send_the_writes_to_mlflow(store, monkeypatch):
    uri, client, _ = store
    opened = []

    def opener():
        opened.append(1)
        return client

    assert isinstance(open_store(uri, LazyClient(opener)), SqliteWriter) and not opened
    for var in ("NBOPS_NO_FAST_REGISTRY", "MLFLOW_ENABLE_WORKSPACES", "MLFLOW_ACTIVE_MODEL_ID"):
        with monkeypatch.context() as m:
            m.setenv(var, "1")
            assert isinstance(open_store(uri, LazyClient(opener)), ClientStore), var


def test_sqlite_errors_a_store_has_are_store_errors_and_bugs_are_not():
    from nbops.core.store import is_store_error

    assert is_store_error(sqlite3.OperationalError("database is locked"))
    assert not is_store_error(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_store_error(sqlite3.ProgrammingError("Incorrect number of bindings"))


def test_writer_threads_and_mlflow_write_the_same_store_at_once(store, tmp_path):
    """Two writer threads and MLflow's client (as a kernel writes) on one database: every row lands."""
    import threading

    uri, client, mlflow_store = store
    writer = SqliteWriter(uri, no_fallback)
    exp = writer.experiment_id("notebooks/busy", (tmp_path / "arts").as_uri())
    errors: list[Exception] = []

    def work(s, who):
        try:
            for i in range(15):
                run_id = s.create_run(exp, {"mlflow.user": who}, f"{who} {i}", 1)
                s.log_params(run_id, {"i": str(i)})
                s.log_metrics(run_id, {"m": float(i)}, 2)
                s.set_terminated(run_id, "FINISHED")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(writer, "w1")), threading.Thread(target=work, args=(writer, "w2")),
               threading.Thread(target=work, args=(mlflow_store, "mlflow"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    runs = client.search_runs([exp], max_results=1000)
    assert len(runs) == 45 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["m"] for r in runs) == sorted([float(i) for i in range(15)] * 3)
    assert sorted(r.info.user_id for r in runs) == sorted(["mlflow"] * 15 + ["w1"] * 15 + ["w2"] * 15)
