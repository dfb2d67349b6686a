"""Approvals as a history, `require_approvals`, NaN metrics and refused model names: a real sqlite
MLflow store, versions registered by nbops's own `Registrar`, and the real CLI in-process.

The versions here come from runs made with MlflowClient (a metric, a logged model), not from a
kernel: what is under test is the registry and the registration that follows a run. One test at
the end goes through `nbops run` to see the note a NaN gate metric leaves in the run's summary.
"""

from __future__ import annotations

import json
import math

import pytest

from nbops.core.gates import parse_gate
from nbops.lifecycle.registration import Registrar
from nbops.notebook.document import ModelSpec
from tests.conftest import write_notebook
from tests.lifecycle import cli

GATED = ModelSpec("scored", gates=(parse_gate("accuracy >= 0.5"),), compare="accuracy")


def _pyproject(root, registry: str = "") -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "reg"\n\n[tool.nbops]\nruns_dir = "runs"\n\n[tool.nbops.registry]\n' + registry)


@pytest.fixture
def store(project, mlflow_client):
    """(client, uri, experiment id) of the project's mlflow.db."""
    _pyproject(project)
    client = mlflow_client()
    uri = f"sqlite:///{project / 'mlflow.db'}"
    exp = client.create_experiment("approvals", artifact_location=str(project / "mlruns"))
    return client, uri, exp


def _run(client, exp, metrics: dict[str, float], records: dict | None = None) -> str:
    """A finished run that logged METRICS and a model; RECORDS as `Tracker.finish` keeps what
    `nbops.record` recorded that is no MLflow metric (NaN, inf, text)."""
    run_id = client.create_run(exp).info.run_id
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    if records:
        client.log_dict(run_id, records, "nbops/other_records.json")
    client.create_logged_model(exp, name="model", source_run_id=run_id)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _register(store, metrics, spec: ModelSpec = GATED, records=None) -> tuple[str | None, str | None, str]:
    client, uri, exp = store
    return Registrar()(client, uri, _run(client, exp, metrics, records), spec)


def _cli(root, *args):
    return cli(root, *args)


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def test_approvals_are_kept_and_require_approvals_counts_people(project, store):
    assert _register(store, {"accuracy": 0.9}) == ("scored", "1", "")
    _pyproject(project, "require_approvals = 2\n")

    code, out, err = _cli(project, "models", "approve", "scored", "1", "--by", "alice", "--note", "metrics ok")
    assert code == 0 and "approved by alice" in out and "1 approver(s): alice of 2 required" in out, (out, err)
    assert "recording alice's approval of scored version 1" in err  # a line while it works (issue 23)
    code, _, err = _cli(project, "models", "promote", "scored", "1", "--alias", "champion")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "is not approved: 1 of 2 approvers (alice), 1 more needed" in err

    # the same person again is kept in the history but does not count twice
    code, out, _ = _cli(project, "models", "approve", "scored", "1", "--by", " alice ", "--note", "again")
    assert code == 0 and "counted once" in out
    code, _, err = _cli(project, "models", "promote", "scored", "1", "--alias", "champion")
    assert code == 2 and "1 of 2 approvers (alice), 1 more needed" in err

    code, out, _ = _cli(project, "models", "approve", "scored", "1", "--by", "bob", "--note", "drift checked")
    assert code == 0 and "2 approver(s): alice, bob" in out
    code, out, err = _cli(project, "models", "promote", "scored", "1", "--alias", "champion", "--by", "carol")
    assert code == 0 and "scored@champion -> version 1, by carol" in out, err

    code, out, _ = _cli(project, "models", "list", "scored", "--format", "json")
    listed = _strict_json(out)
    row = listed["versions"][0]
    assert listed["approvals_required"] == 2
    assert row["approvers"] == ["alice", "bob"]
    assert [(a["by"], a["note"]) for a in row["approvals"]] == [
        ("alice", "metrics ok"), ("alice", "again"), ("bob", "drift checked")]
    assert all(a["at"].endswith("Z") and "T" in a["at"] for a in row["approvals"])
    assert row["approved_by"] == "bob" and row["approved_at"] == row["approvals"][-1]["at"]  # the latest
    code, out, _ = _cli(project, "models", "list", "scored")
    assert code == 0 and "alice, bob" in out

    client = store[0]
    tags = client.get_model_version("scored", "1").tags
    assert len([k for k in tags if k.startswith("nbops.approval.")]) == 3
    assert tags["nbops.approval_note"] == "drift checked"


def test_one_approval_still_enough_with_require_approval(project, store):
    _register(store, {"accuracy": 0.9})
    _pyproject(project, "require_approval = true\n")
    code, _, err = _cli(project, "models", "promote", "scored", "1", "--alias", "champion")
    assert code == 2 and "not approved ([tool.nbops.registry] require_approval)" in err
    assert _cli(project, "models", "approve", "scored", "1", "--by", "alice")[0] == 0
    assert _cli(project, "models", "promote", "scored", "1", "--alias", "champion")[0] == 0


def test_an_approval_from_before_the_history_is_kept(project, store):
    client = store[0]
    _register(store, {"accuracy": 0.9})
    for key, value in {"nbops.approved_by": "dave", "nbops.approved_at": "2024-01-01T00:00:00Z",
                       "nbops.approval_note": "old style"}.items():
        client.set_model_version_tag("scored", "1", key, value)
    _pyproject(project, "require_approvals = 2\n")
    assert _cli(project, "models", "approve", "scored", "1", "--by", "erin")[0] == 0
    row = _strict_json(_cli(project, "models", "list", "scored", "--format", "json")[1])["versions"][0]
    assert [(a["by"], a["note"]) for a in row["approvals"]] == [("dave", "old style"), ("erin", "")]
    assert "nbops.approval_note" not in client.get_model_version("scored", "1").tags  # erin left none
    assert _cli(project, "models", "promote", "scored", "1", "--alias", "champion")[0] == 0


def test_models_list_json_has_null_for_nan(project, store):
    spec = ModelSpec("scored", gates=(parse_gate("f1 >= 0.1"),), compare="accuracy")
    name, version, note = _register(store, {"accuracy": math.nan, "f1": 0.7, "loss": math.nan}, spec)
    assert (name, version) == ("scored", "1")
    assert note == "compare metric accuracy is NaN: registered, ranked last"
    assert _register(store, {"accuracy": 0.8, "f1": 0.6}, spec)[1:] == ("2", "")
    code, out, err = _cli(project, "models", "list", "scored", "--format", "json")
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    rows = _strict_json(out)["versions"]
    assert [r["version"] for r in rows] == ["2", "1"]  # NaN ranks last
    assert rows[1]["value"] is None and rows[1]["metrics"]["loss"] is None and rows[1]["metrics"]["f1"] == 0.7
    code, out, _ = _cli(project, "models", "list", "scored")
    assert code == 0 and "nan" in out  # the table says what it is


@pytest.mark.parametrize("metrics, records, note", [
    ({"accuracy": math.nan}, None, "metric accuracy is NaN: not registered"),  # logged to MLflow
    ({}, {"accuracy": "nan"}, "metric accuracy is NaN: not registered"),  # as nbops.record keeps it
    ({}, {"accuracy": "inf"}, "metric accuracy is inf: not registered"),  # inf would pass >=
    ({}, {"accuracy": math.nan}, "metric accuracy is NaN: not registered"),  # a JSON NaN
    ({}, {"other": 1}, "gate 'accuracy >= 0.5' failed: metric 'accuracy' was not recorded: not registered"),
    ({"accuracy": 0.2}, None, "gate 'accuracy >= 0.5' failed: accuracy = 0.2: not registered"),
])
def test_gate_metric_nan_is_said(store, metrics, records, note):
    assert _register(store, metrics, records=records) == ("scored", None, note)
    client = store[0]
    assert not client.search_registered_models()  # nothing registered, no empty model either


def test_compare_metric_recorded_as_nan_is_said(store):
    spec = ModelSpec("scored", compare="auc")
    assert _register(store, {"accuracy": 0.9}, spec, records={"auc": "-inf"}) == (
        "scored", "1", "compare metric auc is -inf: registered, ranked last")
    said = _register(store, {"accuracy": 0.9}, spec)[2]
    assert said == "compare metric auc was not recorded: registered, ranked last"


@pytest.mark.parametrize("name, why", [("team/clf", "slash"), ("a:b", "colon"), ("50%", "percent"),
                                       ("x" * 300, "300 characters")])
def test_registrar_refuses_a_name_mlflow_would_refuse(store, name, why):
    result = _register(store, {"accuracy": 0.9}, ModelSpec(name))
    assert result[:2] == (name, None)
    assert why in result[2] and result[2].endswith("not registered (rename metadata.nbops.model.name)")
    assert "\n" not in result[2] and "Invalid" not in result[2]  # ours, not MLflow's message


def test_nbops_run_says_a_nan_gate_metric(project):
    """Through the real run: the notebook records accuracy = NaN; the summary says why no model."""
    cells = [("code", "seed = 0", ["parameters"]),
             ("code", "import pandas as pd\nfrom sklearn.dummy import DummyClassifier\n"
                      "from nbops import kit, record\n"
                      "X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]}); y = [0, 1, 0, 1]\n"
                      "record('accuracy', float('nan'))\n"
                      "kit.log_sklearn_model(DummyClassifier().fit(X, y), X)")]
    write_notebook(project / "notebooks" / "nan.ipynb", cells,
                   nbops={"model": {"name": "nanmodel", "gates": ["accuracy >= 0.5"], "compare": "accuracy"}})
    code, out, err = cli(project, "run", "notebooks/nan.ipynb", "--quiet")
    assert "metric accuracy is NaN: not registered" in out + err, (out, err)
    assert "Traceback" not in err and "Downloading artifacts" not in err
