"""Every template's model through serve, predict and monitor, as a user gets it.

One project, built once: the `classification` template (scikit-learn, column signature) and the
`torch_classifier` template (PyTorch, tensor signature, a few epochs) each run through
`nbops run` into a real sqlite store and registered; their v1 made champion. Then, per model: a
real `nbops serve` process over real HTTP with each of MLflow's scoring payloads, `nbops predict`
on CSV and Parquet, and `nbops monitor` with labels. The `batch_predict` template consumes the
torch model. Serving the scikit-learn model must not load torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.e2e.test_serve import Server
from tests.lifecycle import cli, git, nbops

# model name -> (template, dataset, parameters that keep its run short)
MODELS = {
    "clf": ("classification", "iris", ["-p", "dataset=iris"]),
    "mlp": ("torch_classifier", "digits", ["-p", "epochs=4", "-p", "use_gpu=False"]),
}


def dataset(name: str) -> pd.DataFrame:
    """The bundled dataset as `kit.load_dataset` gives it (its column names), with `target`."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = [str(c).replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns]
    frame["target"] = bunch.target
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("templates") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "templates"\n\n[tool.nbops]\nruns_dir = "runs"\n')
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n.nbops/\npredictions/\nmonitor/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "test")
    (root / "data").mkdir()
    for model, (template, data, params) in MODELS.items():
        dataset(data).to_csv(root / "data" / f"{data}.csv", index=False)
        nbops(root, "new", template, model, *params)
    nbops(root, "new", "batch_predict", "score", "-p", "model=mlp@champion",
          "-p", "input_path=../data/digits.csv", "-p", "output_path=../predictions/digits.csv")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "templates")
    nbops(root, "run", "notebooks/clf.ipynb", "notebooks/mlp.ipynb", "--jobs", "2", "--quiet")
    for model in MODELS:
        nbops(root, "models", "promote", model, "1", "--alias", "champion")
    return root


@pytest.fixture(scope="module")
def servers(project, tmp_path_factory):
    """A real `nbops serve` per model, started side by side."""
    logs = tmp_path_factory.mktemp("serve-logs")
    running = {model: Server(project, logs / f"{model}.log", "--quiet", name=model) for model in MODELS}
    try:
        for server in running.values():
            server.wait_ready(timeout=240)
        yield running
    finally:
        for server in running.values():
            server.stop()


def payloads(rows: pd.DataFrame) -> dict[str, dict]:
    """MLflow's scoring payloads (and nbops's own `records`) for ROWS."""
    split = rows.to_dict(orient="split")
    return {
        "inputs": {"inputs": rows.to_numpy().tolist()},
        "instances": {"instances": rows.to_numpy().tolist()},
        "dataframe_split": {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        "dataframe_records": {"dataframe_records": rows.to_dict(orient="records")},
        "records": {"records": rows.to_dict(orient="records")},
    }


def labels_of(predictions) -> np.ndarray:
    """Class labels: a scikit-learn classifier's predictions, or the best of a network's logits."""
    array = np.asarray(predictions)
    return array.argmax(axis=1) if array.ndim == 2 else array


@pytest.mark.parametrize("model", list(MODELS))
def test_serve_answers_every_scoring_payload(project, servers, model, tmp_path):
    data = dataset(MODELS[model][1])
    rows = data.drop(columns="target").sample(n=40, random_state=1)
    answers = {}
    with httpx.Client(base_url=servers[model].url, timeout=60) as client:
        for kind, body in payloads(rows).items():
            response = client.post("/invocations", json=body)
            assert response.status_code == 200, (kind, response.text)
            assert response.json()["model"] == model and response.json()["version"] == "1"
            answers[kind] = np.asarray(response.json()["predictions"])
        first = answers.pop("inputs")
        for kind, predictions in answers.items():
            np.testing.assert_allclose(predictions, first, rtol=1e-5, err_msg=kind)
        truth = data.loc[rows.index, "target"].to_numpy()
        assert (labels_of(first) == truth).mean() > 0.8  # the model, not noise

        # a row of the wrong width and a text value are 400s naming the problem, not 500s
        short = client.post("/invocations", json={"inputs": [rows.iloc[0].tolist()[:3]]})
        assert short.status_code == 400 and "3 values" in short.json()["error"]
        record = rows.iloc[0].to_dict() | {rows.columns[1]: "dark"}
        bad = client.post("/invocations", json={"dataframe_records": [record]})
        assert bad.status_code == 400 and rows.columns[1] in bad.json()["error"]
        assert client.get("/ready").status_code == 200

    # serve and predict agree on the same rows
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = cli(project, "predict", model, "--input", str(tmp_path / "rows.csv"),
                         "--output", str(tmp_path / "out.csv"), "--quiet")
    assert code == 0, out + err
    written = pd.read_csv(tmp_path / "out.csv")
    columns = [c for c in written.columns if c.startswith("prediction")]
    np.testing.assert_allclose(written[columns].to_numpy().squeeze(), first, rtol=1e-4)


def test_serving_the_sklearn_model_loads_no_torch(servers):
    def mapped(server) -> str:
        return Path(f"/proc/{server.proc.pid}/maps").read_text()

    assert "libtorch" in mapped(servers["mlp"])  # the check can see torch where it is loaded
    assert "libtorch" not in mapped(servers["clf"])


@pytest.mark.parametrize("model", list(MODELS))
def test_predict_reads_csv_and_parquet(project, model, tmp_path):
    data = dataset(MODELS[model][1])
    features = data.drop(columns="target")
    features.insert(0, "id", [f"r{i:05d}" for i in range(len(features))])  # passes through
    features.to_csv(tmp_path / "in.csv", index=False)
    features.to_parquet(tmp_path / "in.parquet")
    outputs = {}
    for fmt in ("csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        code, stdout, stderr = cli(project, "predict", f"{model}@champion", "--input",
                                   str(tmp_path / f"in.{fmt}"), "--output", str(out), "--quiet")
        assert code == 0, stdout + stderr
        frame = pd.read_csv(out, dtype={"id": str}) if fmt == "csv" else pd.read_parquet(out)
        assert frame["id"].tolist() == features["id"].tolist()
        assert (frame["model_version"].astype(str) == "1").all()
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        assert sidecar["rows"] == len(data) and sidecar["model"]["name"] == model
        outputs[fmt] = frame[sidecar["output"]["prediction_columns"]].to_numpy()
    np.testing.assert_allclose(outputs["csv"], outputs["parquet"], rtol=1e-5)
    expected = 10 if model == "mlp" else 1  # a network's logits: one column per class
    assert outputs["csv"].shape == (len(data), expected)
    assert (labels_of(outputs["csv"].squeeze()) == data["target"].to_numpy()).mean() > 0.85


@pytest.mark.parametrize("model", list(MODELS))
def test_monitor_drift_and_labels(project, model, tmp_path):
    name = MODELS[model][1]
    reference = project / "data" / f"{name}.csv"
    data = pd.read_csv(reference)
    same = tmp_path / "same.csv"
    data.sample(frac=1.0, random_state=2).to_csv(same, index=False)
    code, out, err = cli(project, "monitor", model, "--reference", str(reference), "--current",
                         str(same), "--labels", "target", "--out", str(tmp_path / "same"))
    assert code == 0, out + err
    report = json.loads((tmp_path / "same" / "drift.json").read_text())
    features = len(data.columns) - 1
    assert len(report["features"]) == features and report["drifted"] == []
    assert report["decay"]["metric"] == "accuracy" and not report["decay"]["decayed"]
    assert report["decay"]["current"] > 0.85

    # every feature moved (digits inverted, iris scaled): drift, and the accuracy falls
    moved = data.copy()
    columns = [c for c in data.columns if c != "target"]
    moved[columns] = 16 - moved[columns] if name == "digits" else moved[columns] * 1.6
    shifted = tmp_path / "moved.parquet"
    moved.to_parquet(shifted)
    code, out, err = cli(project, "monitor", f"{model}@champion", "--reference", str(reference),
                         "--current", str(shifted), "--labels", "target", "--out", str(tmp_path / "moved"))
    assert code == 1, out + err
    report = json.loads((tmp_path / "moved" / "drift.json").read_text())
    assert report["alarm"] and len(report["drifted"]) >= features // 2
    assert report["decay"]["decayed"]


def test_batch_predict_template_scores_with_the_torch_model(project):
    nbops(project, "run", "notebooks/score.ipynb", "--quiet")
    output = project / "predictions" / "digits.csv"
    frame = pd.read_csv(output)
    columns = [f"prediction_{i}" for i in range(10)]
    assert set(columns) <= set(frame.columns) and (frame["model_version"] == 1).all()
    truth = pd.read_csv(project / "data" / "digits.csv")["target"].to_numpy()
    assert (frame[columns].to_numpy().argmax(axis=1) == truth).mean() > 0.85
    sidecar = json.loads(output.with_name("digits.csv.json").read_text())
    assert sidecar["model"]["name"] == "mlp" and sidecar["model"]["flavor"] == "pyfunc"


def test_log_torch_model_leaves_the_callers_module_as_it_was(tmp_path, monkeypatch):
    """kit.log_torch_model logs a CPU copy in eval mode: the caller's module keeps its mode (and
    device: on a GPU machine it would stay on the GPU) and can go on training."""
    import mlflow
    import torch
    from mlflow.models import Model

    from nbops import kit

    monkeypatch.delenv("NBOPS_NO_TRACK", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    net.train()
    features = pd.DataFrame(np.random.default_rng(0).random((8, 4)), columns=list("abcd"))
    before = [p.detach().clone() for p in net.parameters()]
    try:
        with mlflow.start_run():
            info = kit.log_torch_model(net, features)
        logged = Model.load(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)
    assert net.training  # still in train mode
    assert all(p.requires_grad and torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    assert logged.metadata["nbops"]["features"] == ["a", "b", "c", "d"]
    assert logged.signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "float32", "shape": (-1, 4)}
