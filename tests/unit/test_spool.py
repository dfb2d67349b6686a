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
    return {"experiment": "notebooks/a", "run_name": "a-123456", "server_run_id": "abc",
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
    entry = spool.write(root, _record(), {"notebook/out.ipynb": nb},
                        [({"name": "model", "model_type": None}, model)])
    record = spool.read(entry)
    assert entry.name == record["spool_id"] and len(record["spool_id"]) == 32
    assert record["format"] == spool.FORMAT and record["files"] == ["notebook/out.ipynb"]
    assert record["metrics"] == [{"key": "acc", "value": 0.9, "timestamp": 1000, "step": 2}]  # NaN left out
    assert record["server_run_id"] == "abc" and record["model"]["register"] is True
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
    entry = tmp_path / "abc"
    entry.mkdir()
    (entry / spool.RECORD).write_text("{not json")
    with pytest.raises(TrackingError, match="not a spool record"):
        spool.read(entry)
    (entry / spool.RECORD).write_text(json.dumps({"format": 1, "spool_id": "other"}))
    with pytest.raises(TrackingError, match="format 1"):
        spool.read(entry)


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
