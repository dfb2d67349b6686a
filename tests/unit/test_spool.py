"""The spool's format (run/spool.py): an entry written whole or not at all, read back as written,
listed without a writer's temporary folder, removed whole; and `[tool.nbops] tracking_retry_s`."""

from __future__ import annotations

import json
import os

import pytest

from nbops.core.config import load_settings
from nbops.core.errors import ConfigError, TrackingError
from nbops.core.store import kernel_retry_env
from nbops.run import spool


def _record(**extra):
    return {"experiment": "notebooks/a", "run_name": "a-123456", "server_run_id": "ab" * 16,
            "tags": {"nbops.notebook": "notebooks/a.ipynb"}, "params": {"n": "3"},
            "metrics": spool.metric_rows({"acc": 0.9, "bad": float("nan")}, timestamp_ms=1000, step=2),
            "status": "FINISHED", "model": {"name": "m", "gates": ["acc >= 0.5"], "register": True}, **extra}


def test_an_entry_round_trips_with_its_files_and_models(tmp_path):
    nb = tmp_path / "out.ipynb"
    nb.write_text('{"cells": []}')
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}")
    root = tmp_path / ".nbops" / "spool"
    entry, held = spool.write(root, _record(), {"notebook/out.ipynb": nb},
                              [({"name": "model", "model_type": None}, model)])
    assert held is None
    record = spool.validate(entry)
    assert entry.name == record["spool_id"] and len(record["spool_id"]) == 32
    assert record["format"] == spool.FORMAT and record["files"] == ["notebook/out.ipynb"]
    assert record["metrics"] == [{"key": "acc", "value": 0.9, "timestamp": 1000, "step": 2}]  # NaN left out
    assert record["server_run_id"] == "ab" * 16 and record["model"]["register"] is True
    assert (entry / "artifacts" / "notebook" / "out.ipynb").read_text() == '{"cells": []}'
    ((meta, files),) = spool.models(entry)
    assert meta["name"] == "model" and (files / "MLmodel").read_text() == "flavors: {}"
    assert spool.entries(root) == [entry]
    assert "1 run(s) not yet recorded" in spool.pending_line(tmp_path)
    spool.remove(entry)
    assert list(root.iterdir()) == [] and spool.pending_line(tmp_path) == ""


def test_a_failed_write_leaves_nothing(tmp_path):
    root = tmp_path / "spool"
    with pytest.raises(FileNotFoundError):
        spool.write(root, _record(), {"notebook/out.ipynb": tmp_path / "missing.ipynb"})
    assert list(root.iterdir()) == []


def test_a_writers_temporary_folder_is_not_an_entry(tmp_path):
    root = tmp_path / "spool"
    (root / ".tmp-123").mkdir(parents=True)
    (root / ".tmp-123" / spool.RECORD).write_text("{}")
    assert spool.entries(root) == [] and spool.entries(tmp_path / "none") == []


def test_a_foreign_or_broken_record_is_one_line(tmp_path):
    entry = tmp_path / ("ab" * 16)
    entry.mkdir()
    (entry / spool.RECORD).write_text("{not json")
    with pytest.raises(TrackingError, match="not a spool record"):
        spool.validate(entry)
    (entry / spool.RECORD).write_text(json.dumps({"format": 1, "spool_id": "other"}))
    with pytest.raises(TrackingError, match="spool_id is not its folder's name"):
        spool.validate(entry)


@pytest.mark.parametrize(("change", "why"), [
    ({"params": ["a"]}, "params is not a map"),
    ({"tags": {"a": 1}}, "tags is not a map"),
    ({"experiment": ""}, "no experiment"),
    ({"status": "RUNNING"}, "never uploaded"),
    ({"status": "SCHEDULED"}, "is not one of"),
    ({"metrics": [{"key": "a", "value": "1", "timestamp": 1, "step": 0}]}, "metric row"),
    ({"metrics": {"a": 1}}, "metrics is not a list"),
    ({"model": {"name": "m", "gates": "acc > 1"}}, "model.gates"),
    ({"model": {"name": "m", "register": "yes"}}, "model.register"),
    ({"server_run_id": "../../etc"}, "server_run_id"),
    ({"format": 99}, "format 99"),
    ({"datasets": [{"name": "x"}]}, "datasets"),
])
def test_the_schema_refuses_what_nbops_never_writes(tmp_path, change, why):
    entry, _ = spool.write(tmp_path / "spool", {**_record(), **change}, {})
    with pytest.raises(spool.BadEntry, match=why):
        spool.validate(entry)
    moved = spool.quarantine(entry, "why")
    assert moved.parent.name == spool.QUARANTINE and (moved / spool.WHY).read_text() == "why\n"
    assert spool.entries(tmp_path / "spool") == []


def test_symlinks_and_missing_files_are_refused(tmp_path):
    nb = tmp_path / "out.ipynb"
    nb.write_text("{}")
    entry, _ = spool.write(tmp_path / "spool", _record(), {"notebook/out.ipynb": nb})
    assert spool.validate(entry)["files"] == ["notebook/out.ipynb"]
    (entry / "artifacts" / "notebook" / "out.ipynb").unlink()
    with pytest.raises(spool.BadEntry, match="is missing"):
        spool.validate(entry)
    os.symlink("/etc/passwd", entry / "artifacts" / "notebook" / "out.ipynb")
    with pytest.raises(spool.BadEntry, match="symlink"):
        spool.validate(entry)


def test_an_entry_is_held_by_one_process_at_a_time(tmp_path):
    entry, fd = spool.write(tmp_path / "spool", _record(), {}, hold=True)
    with spool.holding(entry) as mine:
        assert mine is False  # the writer holds it (flock on the folder: per open file)
    spool.release(fd)
    with spool.holding(entry) as mine:
        assert mine is True
        with spool.holding(entry) as again:
            assert again is False
    spool.remove(entry)
    with spool.holding(entry) as mine:
        assert mine is False  # gone: uploaded by someone else


def test_tracking_retry_s_is_a_positive_finite_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("NBOPS_TRACKING_RETRY_S", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\ntracking_retry_s = 15\n")
    assert load_settings(tmp_path).tracking_retry_s == 15.0
    monkeypatch.setenv("NBOPS_TRACKING_RETRY_S", "7.5")
    assert load_settings(tmp_path).tracking_retry_s == 7.5
    monkeypatch.delenv("NBOPS_TRACKING_RETRY_S")
    for bad in ("0", "-1", "inf", "nan", '"soon"', "true"):
        (tmp_path / "pyproject.toml").write_text(f"[tool.nbops]\ntracking_retry_s = {bad}\n")
        with pytest.raises(ConfigError, match="tracking_retry_s"):
            load_settings(tmp_path)
    assert os.environ.get("NBOPS_TRACKING_RETRY_S") is None


def test_the_kernel_gets_the_same_retry_budget(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", raising=False)
    # backoff 1 s doubling: n retries sleep 2**n - 1 seconds
    assert kernel_retry_env(60)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"  # 31 s; 6 would sleep 63
    assert kernel_retry_env(600)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert kernel_retry_env(5)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"  # never fewer than nbops's own
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # the user's own setting is kept
    assert kernel_retry_env(600)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_the_local_runs_of_a_dead_nbops_are_swept(tmp_path):
    import socket

    from nbops.run import localrun, orphans

    root = spool.spool_root(tmp_path)
    dead, alive = root / ".run-dead", root / ".run-alive"
    for folder, owner in ((dead, f"{socket.gethostname()}:999999999:1"), (alive, orphans.owner())):
        folder.mkdir(parents=True)
        (folder / localrun.OWNER_FILE).write_text(owner)
    assert localrun.sweep_dead(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir()
