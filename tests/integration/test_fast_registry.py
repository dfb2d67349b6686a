"""The registry's fast readers (the sqlite store read directly, a server's REST API) answer
exactly what MLflow's own client answers, on a store that has the awkward cases: NaN and infinite
metrics, a deleted run behind a version, a deleted version, aliases, approvals, a RUNNING run.
And `nbops models list` on the fast path does not import mlflow."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.mlflow_server import mlflow_server as running_server

BIN = Path(sys.executable).parent


def populate(uri: str) -> dict[str, str]:
    """Two models; `m` has versions 1-3 (3's run deleted) and a deleted version 4."""
    from mlflow.tracking import MlflowClient

    from nbops.run.orphans import owner

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("fast")
    runs = {}
    for i, metrics in enumerate([{"accuracy": 0.8999996, "loss": float("nan"), "big": float("inf")},
                                 {"accuracy": 0.93, "loss": 0.2, "small": float("-inf")},
                                 {"accuracy": 0.5}]):
        run = client.create_run(exp, tags={"nbops.notebook": f"notebooks/n{i}.ipynb", "nbops.git_sha": "abc" * 10})
        rid = run.info.run_id
        for key, value in metrics.items():
            client.log_metric(rid, key, value)
        client.log_metric(rid, "accuracy", metrics["accuracy"], step=0)  # a history, same latest
        client.log_param(rid, "n", str(i))
        client.set_terminated(rid)
        runs[str(i + 1)] = rid
    client.create_registered_model("m", tags={"nbops.compare": "accuracy", "nbops.higher_is_better": "true",
                                              "nbops.gates": json.dumps(["accuracy >= 0.9"])})
    client.create_registered_model("other")
    for v in ("1", "2", "3", "4"):
        client.create_model_version("m", f"runs:/{runs.get(v, runs['1'])}/model", run_id=runs.get(v, runs["1"]),
                                    tags={"metric.accuracy": "0.9", "nbops.gates": "passed"})
    client.set_model_version_tag("m", "1", "nbops.approval.00000000000000000001",
                                 json.dumps({"by": "alice", "at": "2026-01-01T00:00:00Z", "note": ""}))
    client.set_model_version_tag("m", "1", "nbops.approved_by", "alice")
    client.set_registered_model_alias("m", "champion", "1")
    client.set_registered_model_alias("m", "challenger", "2")
    client.set_registered_model_tag("m", "nbops.alias_event.champion.00000000000000000001",
                                    json.dumps({"to": "1", "from": None, "by": "t", "at": "x", "action": "promote"}))
    client.delete_model_version("m", "4")
    client.delete_run(runs["3"])
    running = client.create_run(exp, tags={"nbops.owner": owner(), "nbops.heartbeat": str(int(time.time())),
                                           "nbops.notebook": "notebooks/live.ipynb"})
    return {**runs, "running": running.info.run_id}


def _plain(value):
    """Records compared with NaN equal to NaN (dataclasses -> dicts, floats -> repr)."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return value


def assert_same_answers(fast, uri: str, runs: dict[str, str]) -> None:
    from mlflow.tracking import MlflowClient

    from nbops.core.registry_read import ClientReader

    slow = ClientReader(MlflowClient(tracking_uri=uri, registry_uri=uri), uri)
    assert fast.model("m") == slow.model("m") and fast.model("m").aliases == {"champion": "1", "challenger": "2"}
    assert fast.model("nosuch") is None and slow.model("nosuch") is None
    assert sorted(fast.model_names()) == sorted(slow.model_names()) == ["m", "other"]
    by_version = lambda found: sorted(found, key=lambda v: int(v.version))  # noqa: E731
    assert by_version(fast.versions("m")) == by_version(slow.versions("m"))
    assert [v.version for v in by_version(fast.versions("m"))] == ["1", "2", "3"]  # 4 was deleted
    assert fast.versions("other") == slow.versions("other") == []
    for v in ("1", "2", "3"):
        assert fast.version("m", v) == slow.version("m", v)
    assert fast.version("m", "99") is None and slow.version("m", "99") is None
    for rid in [*runs.values(), "0" * 32]:
        assert _plain(fast.run(rid)) == _plain(slow.run(rid)), rid
    assert math.isnan(fast.run(runs["1"]).metrics["loss"])  # inf: as MLflow stores it
    assert fast.run(runs["3"]) is not None  # a deleted run is still MLflow's to read
    assert [rid for rid, _ in fast.running_runs()] == [runs["running"]]


def test_sqlite_reader_answers_what_mlflow_answers(tmp_path):
    from nbops.core.sqlite_store import SqliteReader

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    runs = populate(uri)
    assert_same_answers(SqliteReader(str(db)), uri, runs)
    absent = SqliteReader(str(tmp_path / "none.db"))
    assert absent.model("m") is None and absent.model_names() == [] and absent.versions("m") == []
    assert not (tmp_path / "none.db").exists()  # reading never creates a store


@pytest.fixture
def mlflow_server(tmp_path):
    with running_server(tmp_path / "server") as server:
        yield server.uri


def _models_list(root: Path, uri: str, fast: bool) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO / "src"))
    if not fast:
        env["NBOPS_NO_FAST_REGISTRY"] = "1"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbops", "models", "list", "m",
                           "--format", "json"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line]
    return json.loads(done.stdout), " ".join(imported)


def test_rest_reader_and_models_list_answer_what_mlflow_answers(mlflow_server, tmp_path):
    from nbops.core.rest_store import RestReader

    runs = populate(mlflow_server)
    assert_same_answers(RestReader(mlflow_server), mlflow_server, runs)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    fast, fast_imports = _models_list(root, mlflow_server, fast=True)
    slow, slow_imports = _models_list(root, mlflow_server, fast=False)
    assert fast == slow and [v["version"] for v in fast["versions"]] == ["2", "1", "3"]
    assert " mlflow " not in f" {fast_imports} " and " mlflow " in f" {slow_imports} "


def test_models_list_on_the_embedded_store_answers_without_mlflow(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    populate(uri)
    fast, fast_imports = _models_list(root, uri, fast=True)
    slow, slow_imports = _models_list(root, uri, fast=False)
    assert fast == slow and fast["versions"][0]["value"] == 0.93
    assert " mlflow " not in f" {fast_imports} " and " mlflow " in f" {slow_imports} "


def test_a_scikit_learn_model_loads_as_mlflow_loads_it_without_mlflow(tmp_path, monkeypatch):
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import Model, infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from nbops.core.config import load_settings
    from nbops.lifecycle import fastload, models
    from nbops.lifecycle.registry import Registry

    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    monkeypatch.chdir(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] + X["b"] > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                 registered_model_name="lr")
    version = Registry(load_settings()).resolve("lr/1")
    fast = fastload.load_sklearn(version)
    assert fast is not None, "a local scikit-learn model must load without MLflow"
    ours, columns = fast
    theirs = mlflow.sklearn.load_model("models:/lr/1")
    assert (ours.predict(X) == theirs.predict(X)).all() and (ours.predict_proba(X) == theirs.predict_proba(X)).all()
    assert columns == models._columns(Model.load("models:/lr/1"))
    loaded = models.load(version)
    assert loaded.flavor == "sklearn" and loaded.columns == columns
    X.to_csv(root / "in.csv", index=False)  # `nbops predict` in a process: the same, without mlflow
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbops", "predict", "lr/1", "--input", "in.csv",
                           "--output", "out.csv", "-q"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines() if line.rstrip().endswith("| mlflow")]
    assert (pd.read_csv(root / "out.csv")["prediction"] == theirs.predict(X)).all()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # MLflow's switch, honoured
    assert fastload.load_sklearn(version) is None


def _nbops(root: Path, uri: str, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nbops", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = " ".join(line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "import time:" in line)
    return done, f" {imported} "


def test_alias_moves_and_approvals_on_a_server_go_through_its_rest_api(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    populate(mlflow_server)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    done, imported = _nbops(root, mlflow_server, "models", "promote", "m", "2", "--alias", "champion", "--by", "bob")
    assert "m@champion -> version 2 (was version 1), by bob" in done.stdout and " mlflow " not in imported
    assert client.get_registered_model("m").aliases["champion"] == "2"
    done, imported = _nbops(root, mlflow_server, "models", "approve", "m", "2", "--by", "alice", "--note", "ok")
    tags = client.get_model_version("m", "2").tags
    assert tags["nbops.approved_by"] == "alice" and tags["nbops.approval_note"] == "ok" and " mlflow " not in imported
    assert [json.loads(v)["by"] for k, v in tags.items() if k.startswith("nbops.approval.")] == ["alice"]
    _nbops(root, mlflow_server, "models", "approve", "m", "2", "--by", "carol")  # no note: the old one goes
    assert "nbops.approval_note" not in client.get_model_version("m", "2").tags
    done, imported = _nbops(root, mlflow_server, "models", "rollback", "m", "--by", "bob")
    assert "m@champion -> version 1 (was version 2)" in done.stdout and " mlflow " not in imported
    assert client.get_registered_model("m").aliases["champion"] == "1"
    events = [json.loads(v)["action"] for k, v in sorted(client.get_registered_model("m").tags.items())
              if k.startswith("nbops.alias_event.champion.")]
    assert events == ["promote", "promote", "rollback"]  # populate's record, then ours
