"""core/sqlite_registry.py writes the registry's rows into the embedded store without `import
mlflow` (issue 23: `promote` and `approve` spent 10-20 s importing it). Each write must leave the
same rows as MlflowClient's on the installed MLflow; what it does not know goes to MLflow. And a
model without `predict_proba` is refused by `predict --proba` (exit 2, one line) and `serve`
(400): real MLflow store, real models, the real CLI and server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nbops.core.registry_read import Unavailable
from nbops.core.sqlite_registry import SqliteRegistry

TABLES = ("registered_models", "registered_model_tags", "registered_model_aliases", "model_versions",
          "model_version_tags")


def _store(root: Path) -> str:
    """A store with model `m` (versions 1 and 2, an SVC without probabilities) made by MLflow."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.svm import SVC

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    X = pd.DataFrame({"a b": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    y = [0, 1, 0, 1, 0, 1]
    model = SVC().fit(X, y)
    client = MlflowClient(uri, uri)
    client.create_registered_model("m", tags={"nbops.compare": "accuracy"})
    exp = client.create_experiment("e", artifact_location=(root / "mlruns").as_uri())
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_metric("accuracy", 0.9)
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                            serialization_format="cloudpickle")
        client.create_model_version("m", info.model_uri, run_id=run.info.run_id)
    return uri


def _rows(db: Path) -> dict[str, list]:
    con = sqlite3.connect(db)
    try:
        skip = {"last_updated_time", "creation_time"}
        out = {}
        for table in TABLES:
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] not in skip]
            out[table] = sorted(con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sqlite-registry") / "proj"
    _store(root)
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    return root


def test_writes_leave_the_rows_mlflow_leaves(store, tmp_path):
    from mlflow.tracking import MlflowClient

    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    shutil.copy(store / "mlflow.db", ours)
    shutil.copy(store / "mlflow.db", theirs)
    writes = [("set_registered_model_alias", "m", "champion", "1"),
              ("set_registered_model_alias", "m", "champion", "2"),  # moved: one row still
              ("set_registered_model_tag", "m", "nbops.alias_event.champion.00000000000000000001",
               json.dumps({"to": "2", "from": "1"})),
              ("set_model_version_tag", "m", "2", "nbops.approved_by", "alice"),
              ("set_model_version_tag", "m", "2", "nbops.approval_note", "a" * 4000),
              ("delete_model_version_tag", "m", "2", "nbops.approval_note"),
              ("delete_model_version_tag", "m", "2", "never.set")]
    fast = SqliteRegistry(str(ours))
    client = MlflowClient(f"sqlite:///{theirs}", f"sqlite:///{theirs}")
    for method, *args in writes:
        getattr(fast, method)(*args)
        getattr(client, method)(*args)
    assert _rows(ours) == _rows(theirs)
    assert fast.model("m").aliases == {"champion": "2"}


@pytest.mark.parametrize("method, args", [
    ("set_registered_model_alias", ("m", "champion", "9")),  # no such version: MLflow says so
    ("set_registered_model_alias", ("nope", "champion", "1")),
    ("set_registered_model_alias", ("m", "latest", "1")),  # reserved: MLflow refuses in its words
    ("set_registered_model_alias", ("m", "v2", "1")),
    ("set_registered_model_tag", ("nope", "k", "v")),
    ("set_registered_model_tag", ("m", "../k", "v")),
    ("set_model_version_tag", ("m", "1", "k", "x" * 6000)),
    ("set_model_version_tag", ("m", "one", "k", "v")),
])
def test_what_it_does_not_know_goes_to_mlflow(store, tmp_path, method, args):
    db = tmp_path / "copy.db"
    shutil.copy(store / "mlflow.db", db)
    before = _rows(db)
    with pytest.raises(Unavailable):
        getattr(SqliteRegistry(str(db)), method)(*args)
    assert _rows(db) == before


def test_an_unknown_schema_revision_goes_to_mlflow(store, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(store / "mlflow.db", db)
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = 'future'")
    con.commit()
    con.close()
    with pytest.raises(Unavailable):
        SqliteRegistry(str(db)).set_registered_model_alias("m", "champion", "1")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}


def test_a_model_without_predict_proba_is_refused_by_predict_and_serve(store, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("a b\n1.0\n2.0\n")
    done = subprocess.run([sys.executable, "-m", "nbops", "predict", "m/1", "--input", str(data),
                           "--output", str(tmp_path / "out.csv"), "--proba", "--quiet"],
                          cwd=store, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("nbops: error: --proba: m/1 gives no class probabilities") and "hint:" in line
    assert not (tmp_path / "out.csv").exists()

    done = subprocess.run([sys.executable, "-m", "nbops", "models", "promote", "m", "1", "--alias", "champion"],
                          cwd=store, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nbops", "serve", "m", "--port", str(port), "--quiet"],
                            cwd=store, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.5)
        body = json.dumps({"records": [{"a b": 1.0}], "probabilities": True}).encode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body), timeout=30)
        assert err.value.code == 400
        assert "m version 1 gives no class probabilities" in json.loads(err.value.read())["error"]
        plain = json.dumps({"records": [{"a b": 1.0}]}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=plain),
                                    timeout=30) as reply:
            assert json.loads(reply.read())["predictions"] in ([0], [1])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
