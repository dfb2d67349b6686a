"""kit.log_text: a run's text artifact written into its local artifact folder without importing
mlflow (NBOPS_RUN_ARTIFACTS, handed over by `nbops run` on the embedded store); a path that
would leave the folder refused; nothing written under --no-track. The whole path (a real run,
MLflow listing and serving the file) is tested in tests/integration/test_pipeline.py."""

from __future__ import annotations

import pytest

from nbops import kit

RUN = "0" * 32


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    folder = tmp_path / RUN / "artifacts"  # as MLflow lays a run out: <run id>/artifacts
    folder.mkdir(parents=True)  # nbops run makes it where the store is (run/kernel_env.py)
    monkeypatch.delenv("NBOPS_NO_TRACK", raising=False)
    monkeypatch.setenv("MLFLOW_RUN_ID", RUN)
    monkeypatch.setenv("NBOPS_RUN_ARTIFACTS", str(folder))
    return folder


def test_written_into_the_runs_folder(run_folder):
    kit.log_text("x,y\n1,2\n", "data/train.csv")
    assert (run_folder / "data" / "train.csv").read_text() == "x,y\n1,2\n"


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "data/../../x", "", "data//x", "./x", "D:evil"])
def test_a_path_outside_the_folder_is_refused(run_folder, bad):
    with pytest.raises(ValueError, match="relative path inside the run's artifacts"):
        kit.log_text("no", bad)
    assert not any(run_folder.iterdir())


@pytest.mark.parametrize("own", ["nbops/records.json", "notebook/x.html"])
def test_nbops_own_folders_are_refused(run_folder, own):
    with pytest.raises(ValueError, match="nbops's own artifacts"):
        kit.log_text("no", own)


def test_nothing_under_no_track_but_a_bad_path_is_still_refused(run_folder, monkeypatch):
    monkeypatch.setenv("NBOPS_NO_TRACK", "1")
    kit.log_text("no", "data/x.txt")
    assert not any(run_folder.iterdir())
    with pytest.raises(ValueError):
        kit.log_text("no", "../x")


@pytest.mark.slow  # imports mlflow
def test_a_folder_of_another_run_is_never_written(run_folder, monkeypatch):
    """An NBOPS_RUN_ARTIFACTS inherited from an outer nbops run names another run: MLflow's
    client then (here no server answers, so it fails rather than write the wrong folder)."""
    monkeypatch.setenv("MLFLOW_RUN_ID", "1" * 32)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(Exception):  # noqa: B017 - MLflow's own error for a run it does not have
        kit.log_text("x", "data/x.txt")
    assert not any(run_folder.iterdir())
