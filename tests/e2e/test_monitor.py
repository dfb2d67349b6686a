"""`nbops monitor` through the real CLI against a trained project (clf@champion: knn on
data/train.csv, features f0..f5, labels in `target`). The project is shared and read-only:
every report goes to tmp_path through --out."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.lifecycle import FEATURES, make_data, nbops


def monitor(project, current, out, *extra):
    return nbops(project, "monitor", *extra, "--reference", "data/train.csv",
                 "--current", str(current), "--out", str(out), check=False)


def read_report(out):
    report = json.loads((out / "drift.json").read_text())
    html = (out / "drift.html").read_text()
    return report, html


def test_copy_of_the_training_data_shows_no_drift_and_no_decay(trained_project, tmp_path):
    current = tmp_path / "copy.csv"
    shutil.copy(trained_project / "data" / "train.csv", current)
    proc = monitor(trained_project, current, tmp_path / "out", "clf", "--labels", "target")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no drift in 6 features" in proc.stdout
    assert "no decay: accuracy" in proc.stdout

    report, html = read_report(tmp_path / "out")
    assert (report["model"], report["version"]) == ("clf", "1")  # NAME alone: the champion
    assert [f["name"] for f in report["features"]] == FEATURES  # the signature's, not `target`
    assert not report["alarm"] and report["drifted"] == []
    assert all(f["psi"] < 1e-9 and f["p_value"] == 1.0 for f in report["features"])
    decay = report["decay"]
    assert decay["metric"] == "accuracy" and not decay["decayed"]
    assert decay["validation"] > 0.8 and decay["rows"] == 1500
    assert report["thresholds"]["psi"] == 0.2
    assert html.count("data:image/png;base64,") == len(FEATURES)
    assert 'class="drifted"' not in html


def test_one_shifted_feature_is_named_and_exits_1(trained_project, tmp_path):
    # the same population with f2 moved by two standard deviations, seen through a sample of it
    shifted = make_data(tmp_path / "shifted.csv", shift={"f2": 2.0})
    current = tmp_path / "current.parquet"
    pd.read_csv(shifted).sample(n=800, random_state=3).to_parquet(current)
    proc = monitor(trained_project, current, tmp_path / "out", "clf@champion")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = [line for line in proc.stdout.splitlines() if line.startswith("drift:")]
    assert len(summary) == 1 and summary[0].startswith("drift: f2 (psi ")
    assert not any(f"{name} (" in summary[0] for name in FEATURES if name != "f2")

    report, html = read_report(tmp_path / "out")
    assert report["alarm"] and report["drifted"] == ["f2"] and report["decay"] is None
    by_name = {f["name"]: f for f in report["features"]}
    assert set(by_name) == set(FEATURES)
    assert by_name["f2"]["psi"] > 1.0 and by_name["f2"]["test"] == "ks"
    assert html.count("data:image/png;base64,") == len(FEATURES)
    assert html.count('<figure class="drifted">') == 1
    assert not list((tmp_path / "out").glob(".*.tmp"))  # written atomically, nothing left over


def test_shuffled_labels_are_decay(trained_project, tmp_path):
    frame = pd.read_csv(trained_project / "data" / "train.csv")
    frame["target"] = frame["target"].sample(frac=1.0, random_state=0).to_numpy()
    current = tmp_path / "shuffled.csv"
    frame.to_csv(current, index=False)
    proc = monitor(trained_project, current, tmp_path / "out", "clf/1", "--labels", "target")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no drift in 6 features" in proc.stdout
    assert "decay: accuracy" in proc.stdout and "no decay" not in proc.stdout
    report, _ = read_report(tmp_path / "out")
    assert report["alarm"] and report["drifted"] == []
    assert report["decay"]["decayed"] and report["decay"]["drop"] > 0.2


def _garbage_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_text("not parquet")
    return path


def _text_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("f0\n1\n")
    return path


def _without_f3(tmp_path):
    path = tmp_path / "no_f3.csv"
    pd.read_csv(make_data(tmp_path / "full.csv")).drop(columns=["f3"]).to_csv(path, index=False)
    return path


def _one_absurd_row(tmp):
    path = tmp / "absurd.csv"
    pd.DataFrame([{**{name: 1e9 for name in FEATURES}, "target": 1}]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("make_current", "extra", "message"), [
    (lambda tmp: tmp / "missing.csv", (), "missing.csv: no such file"),
    (_text_file, (), "data.txt: unknown file type '.txt'"),
    (_garbage_parquet, (), "bad.parquet: cannot read it as parquet"),
    (lambda tmp: make_data(tmp / "cur.csv"), ("--labels", "label"), "no labels column 'label'"),
    (_without_f3, (), "no_f3.csv: no column 'f3', an input of model clf/1"),
    (_one_absurd_row, (), "absurd.csv: 1 row(s), too few to judge drift (at least 30 needed)"),
], ids=["missing", "extension", "unreadable", "labels", "feature", "one-row"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(trained_project, tmp_path,
                                                            make_current, extra, message):
    out = tmp_path / "out"
    proc = monitor(trained_project, make_current(tmp_path), out, "clf", *extra)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbops: error: "), proc.stderr
    assert message in lines[0]
    assert not out.exists()
