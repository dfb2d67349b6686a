"""kit.log_text: a run's text artifact written into its local artifact folder without importing
mlflow (NBOPS_RUN_ARTIFACTS, handed over by `nbops run` on the embedded store); a path that
would leave the folder refused; nothing written under --no-track. The whole path (a real run,
MLflow listing and serving the file) is tested in tests/integration/test_pipeline.py."""

from __future__ import annotations

import pytest

from nbops import kit


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NBOPS_NO_TRACK", raising=False)
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    monkeypatch.setenv("NBOPS_RUN_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def test_written_into_the_runs_folder(run_folder):
    kit.log_text("x,y\n1,2\n", "data/train.csv")
    assert (run_folder / "data" / "train.csv").read_text() == "x,y\n1,2\n"


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "data/../../x", "", "data//x", "./x"])
def test_a_path_outside_the_folder_is_refused(run_folder, bad):
    with pytest.raises(ValueError, match="relative path inside the run's artifacts"):
        kit.log_text("no", bad)
    assert not run_folder.exists()


def test_nothing_under_no_track(run_folder, monkeypatch):
    monkeypatch.setenv("NBOPS_NO_TRACK", "1")
    kit.log_text("no", "data/x.txt")
    assert not run_folder.exists()
