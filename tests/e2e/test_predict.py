"""`nbops predict` and the `batch_predict` template, through the real CLI on a trained project.

`trained_project` is shared and read-only: every output goes to tmp_path. Each CLI call spends
seconds importing MLflow and loading the model, so independent calls run side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lifecycle import make_data, nbops

ROWS = 200_000


def run_all(root: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """`nbops ARGS` for each command, concurrently, in ROOT (the project's store, not the caller's)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    procs = [subprocess.Popen([sys.executable, "-m", "nbops", *args], cwd=root, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    done = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def sidecar(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".json").read_text())


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory) -> Path:
    """200,000 rows of make_data plus two text columns the model does not read: ids with leading
    zeros, notes with "NA" and a comma (added as text: pandas would rewrite them)."""
    path = make_data(tmp_path_factory.mktemp("predict") / "big.csv", rows=ROWS, seed=1)
    lines = path.read_text().splitlines()
    notes = {0: "NA", 7: "null", 123_456: '"a,b"'}
    out = [lines[0] + ",id,note"] + [f"{line},{i:07d},{notes.get(i, '')}" for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(out) + "\n")
    return path


def test_predict_csv_and_parquet_record_the_version(trained_project, big_csv, tmp_path):
    import pandas as pd

    # the training rows repeated to 200,000, with an id: the predictions must line up with their
    # rows across chunk boundaries (30,000 does not divide 200,000), or accuracy drops to chance
    train = pd.read_csv(trained_project / "data" / "train.csv")
    repeated = pd.concat([train] * (ROWS // len(train) + 1), ignore_index=True).head(ROWS)
    repeated.insert(0, "id", [f"r{i}" for i in range(ROWS)])
    parquet_in = tmp_path / "train.parquet"
    repeated.to_parquet(parquet_in, index=False)
    csv_out, pq_out = tmp_path / "out" / "v1.csv", tmp_path / "out" / "v2.parquet"

    v1, v2 = run_all(
        trained_project,
        ["predict", "clf", "--input", str(big_csv), "--output", str(csv_out)],
        ["predict", "clf/2", "--input", str(parquet_in), "--output", str(pq_out), "--chunk-size", "30000"],
    )
    assert v1.returncode == 0, v1.stderr
    assert v2.returncode == 0, v2.stderr
    assert f"wrote {ROWS} prediction(s) from clf/1 (champion) to {csv_out}" in v1.stdout
    assert "from clf/2 (challenger)" in v2.stdout
    # no progress bar without a terminal; one line saying what it does, before the model loads
    assert v1.stderr == f"nbops: predicting {big_csv} with clf/1 (champion) into {csv_out} ...\n"
    assert v2.stderr.startswith("nbops: predicting ") and v2.stderr.count("\n") == 1

    text = {"dtype": {"id": str, "note": str, "model_version": str}, "keep_default_na": False}
    source = pd.read_csv(big_csv, **text)
    out = pd.read_csv(csv_out, **text)
    assert len(out) == ROWS
    assert list(out.columns) == [*source.columns, "prediction", "model_version"]
    assert set(out["model_version"]) == {"1"}
    pd.testing.assert_frame_equal(out[source.columns], source)  # passed through unchanged
    assert out["id"].iloc[5] == "0000005" and out["note"].iloc[[0, 7, 123_456]].tolist() == ["NA", "null", "a,b"]
    assert set(out["prediction"]) == {0, 1}
    meta = sidecar(csv_out)
    assert meta["model"]["name"] == "clf" and meta["model"]["version"] == "1"
    assert meta["model"]["aliases"] == ["champion"] and meta["model"]["run_id"]
    assert meta["input"]["sha256"] == hashlib.sha256(big_csv.read_bytes()).hexdigest()
    assert meta["rows"] == ROWS and meta["chunks"] == 4 and meta["chunk_size"] == 50_000
    assert meta["output"]["prediction_columns"] == ["prediction"]

    scored = pd.read_parquet(pq_out)
    assert len(scored) == ROWS and set(scored["model_version"]) == {"2"}
    assert scored["id"].tolist() == repeated["id"].tolist()
    assert (scored["prediction"] == scored["target"]).mean() > 0.9
    meta = sidecar(pq_out)
    assert meta["model"]["version"] == "2" and meta["model"]["ref"] == "clf/2"
    assert meta["rows"] == ROWS and meta["chunks"] == 7 and meta["input"]["format"] == "parquet"
    assert sorted(os.listdir(tmp_path / "out")) == ["v1.csv", "v1.csv.json", "v2.parquet", "v2.parquet.json"]


def test_bad_input_leaves_nothing_behind(trained_project, tmp_path):
    import pandas as pd

    data = pd.read_csv(trained_project / "data" / "train.csv")
    missing = tmp_path / "missing.csv"
    data.drop(columns=["f3"]).to_csv(missing, index=False)
    # a bad value in the third chunk: two chunks are already written when it fails
    late = tmp_path / "late.csv"
    bad = data.astype({"f2": object})
    bad.loc[1234, "f2"] = "n/a?"
    bad.to_csv(late, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.parquet").write_bytes(b"an earlier output")  # a failed run must not touch it

    first, second = run_all(
        trained_project,
        ["predict", "clf", "--input", str(missing), "--output", str(out / "a.csv")],
        ["predict", "clf", "--input", str(late), "--output", str(out / "kept.parquet"),
         "--chunk-size", "500"],
    )
    assert first.returncode == 2 and first.stdout == ""
    said, line = first.stderr.strip().split("\n", 1)  # what it was doing, then the error
    assert said.startswith("nbops: predicting ")
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"nbops: error: input {missing}: rows 1-1500: missing column 'f3'")
    assert second.returncode == 2
    assert f"input {late}: rows 1001-1500: column 'f2' must be double, got 'n/a?'" in second.stderr
    assert os.listdir(out) == ["kept.parquet"]  # no output, no sidecar, no temp file
    assert (out / "kept.parquet").read_bytes() == b"an earlier output"


def test_refuses_before_loading_a_model(trained_project, tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("f0\n1\n")
    cases = {
        ("clf", str(tmp_path / "nope.csv"), str(tmp_path / "o.csv")): "does not exist",
        ("clf", str(data), str(tmp_path / "o.json")): "unknown file type '.json'",
        ("clf", str(data), str(tmp_path / "." / "in.csv")): "is the input file",
        ("clf@nope", str(data), str(tmp_path / "o.csv")): "model 'clf' has no alias 'nope'",
    }
    results = run_all(trained_project, *[["predict", ref, "--input", i, "--output", o]
                                          for ref, i, o in cases])
    for expected, done in zip(cases.values(), results, strict=True):
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr and done.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]


def test_loads_from_the_projects_store_from_any_folder(trained_project, tmp_path):
    """`models:/` URIs resolve through MLflow's process-wide registry URI, which defaults to
    ./mlflow.db of the working directory: from notebooks/ that is no store at all."""
    out = tmp_path / "p.csv"
    done = run_all(trained_project / "notebooks",
                   ["predict", "clf/2", "--input", "../data/train.csv", "--output", str(out)])[0]
    assert done.returncode == 0, done.stderr
    assert sidecar(out)["model"]["version"] == "2"
    assert not (trained_project / "notebooks" / "mlflow.db").exists()


def test_batch_predict_template_writes_and_records_the_version(trained_project, tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(trained_project, root)
    make_data(root / "data" / "score.csv", rows=2000, seed=3)
    nbops(root, "new", "batch_predict", "score", "-p", "model=clf",
          "-p", "input_path=../data/score.csv", "-p", "output_path=../predictions/score.parquet")
    done = nbops(root, "run", "notebooks/score.ipynb", "--jobs", "1", "--quiet")
    assert "rows=2000" in done.stdout

    import pandas as pd

    scored = pd.read_parquet(root / "predictions" / "score.parquet")
    assert len(scored) == 2000 and set(scored["model_version"]) == {"1"}
    assert sidecar(root / "predictions" / "score.parquet")["model"]["version"] == "1"

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    [run] = client.search_runs([client.get_experiment_by_name("notebooks/score").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["rows"] == 2000
    assert run.data.tags["nbops.template"] == "batch_predict"
    records = json.loads(Path(client.download_artifacts(run.info.run_id, "nbops/records.json")).read_text())
    assert records["model_version"] == "1"
    written = sidecar(root / "predictions" / "score.parquet")
    assert records["predictions"]["model"]["run_id"] == written["model"]["run_id"]
    # the registry is unchanged: a prediction run registers nothing
    assert len(client.search_model_versions("name = 'clf'")) == 2
    # untracked, the kernel still reads the project's registry (its MLflow run goes to scratch)
    done = nbops(root, "run", "notebooks/score.ipynb", "--no-track", "-p", "model=clf/2", "--quiet")
    assert "rows=2000" in done.stdout
    assert set(pd.read_parquet(root / "predictions" / "score.parquet")["model_version"]) == {"2"}
    assert len(client.search_runs([client.get_experiment_by_name("notebooks/score").experiment_id])) == 1
