"""Pure rules of the registry: which model names MLflow and nbops accept, `require_approvals` in
[tool.nbops.registry], the approval history read from version tags, and JSON without NaN."""

from __future__ import annotations

import json
import math

import pytest

from nbops.core.config import load_settings
from nbops.core.errors import ConfigError
from nbops.core.files import json_safe
from nbops.lifecycle.approvals import Approval, approvals_from_tags, distinct_approvers
from nbops.lifecycle.registration import MAX_MODEL_NAME, validate_model_name
from nbops.lifecycle.versions import VersionInfo

GOOD_NAMES = ["clf", "digits-mlp", "churn_v2.1", "Team Model", "a" * MAX_MODEL_NAME, "modèle", "x.y"]
BAD_NAMES = {
    "team/clf": "slash", "a:b": "colon", "50%": "percent", "": "empty", "   ": "empty",
    "a" * (MAX_MODEL_NAME + 1): "at most 256", "clf@champion": "NAME@ALIAS", "o'brien": "single quote",
    "a\\b": "backslash", "line\nbreak": "control character", ".": "resolve", "..": "resolve",
    "a/../b": "slash",
}


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_model_names(name):
    assert validate_model_name(name) is None


@pytest.mark.parametrize("name, reason", BAD_NAMES.items())
def test_refused_model_names_say_why(name, reason):
    why = validate_model_name(name)
    assert why is not None and reason in why
    assert "\n" not in why.replace(repr(name), "")  # one line, whatever the name holds


def test_non_string_name():
    assert "must be a string" in (validate_model_name(3) or "")


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n.strip()] + GOOD_NAMES)
def test_every_name_mlflow_refuses_is_refused_first(name):
    """MLflow's own checks (the registry's and the file store's): what they refuse, we refuse."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.model_registry.file_store import _validate_model_name as file_store_check
    from mlflow.utils.validation import _validate_model_name as registry_check

    refused = False
    for check in (registry_check, file_store_check):
        try:
            check(name)
        except MlflowException:
            refused = True
    if refused:
        assert validate_model_name(name) is not None
    if name in GOOD_NAMES:
        assert not refused  # and what we accept, MLflow accepts


def _settings(tmp_path, body: str):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbops.registry]\n{body}\n")
    return load_settings(tmp_path)


def test_require_approvals(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reg = _settings(tmp_path, "require_approvals = 2").registry
    assert reg["require_approvals"] == 2 and reg["require_approval"] is True  # N implies approval
    assert _settings(tmp_path, "require_approvals = 1\nrequire_approval = true").registry["require_approvals"] == 1
    # `require_approval = true` alone keeps working and the table holds no new key
    assert _settings(tmp_path, "require_approval = true").registry == {
        "require_approval": True, "champion_gates": [], "auto_promote": False}
    assert "require_approvals" not in _settings(tmp_path, "").registry


@pytest.mark.parametrize("body, message", [
    ("require_approvals = 0", "require_approvals must be at least 1, got 0"),
    ("require_approvals = -2", "require_approvals must be at least 1"),
    ("require_approvals = true", "require_approvals must be int"),
    ('require_approvals = "2"', "require_approvals must be int"),
    ("require_approvals = 1.5", "require_approvals must be int"),
    ("require_approvals = 2\nrequire_approval = false", "contradicts"),
    ("require_aprovals = 2", "unknown key 'require_aprovals'"),
])
def test_require_approvals_checked(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, body)


def _event(by: str, at: str, note: str = "") -> str:
    return json.dumps({"by": by, "at": at, "note": note})


def test_approvals_are_read_oldest_first_and_people_count_once():
    tags = {
        "nbops.approval.00000000000000000300": _event("Alice", "t3"),
        "nbops.approval.00000000000000000100": _event("alice", "t1", "first look"),
        "nbops.approval.00000000000000000200": _event("bob", "t2", "checked drift"),
        "nbops.approval.00000000000000000250": "{not json",  # hand-edited: skipped
        "nbops.approval.00000000000000000260": _event(" ", "t"),  # nobody: skipped
        "nbops.approval.note": _event("mallory", "t"),  # not an event key
        "nbops.approved_by": "Alice", "nbops.approved_at": "t3",
    }
    approvals = approvals_from_tags(tags)
    assert approvals == [Approval("alice", "t1", "first look"), Approval("bob", "t2", "checked drift"),
                         Approval("Alice", "t3", "")]
    assert distinct_approvers(approvals) == ["alice", "bob"]
    version = VersionInfo("m", "1", "", "", {}, tags)
    assert version.approvers == ["alice", "bob"] and version.approved_by == "Alice"


def test_an_approval_from_before_the_history_is_one_approval():
    tags = {"nbops.approved_by": "carol", "nbops.approved_at": "t0", "nbops.approval_note": "ok"}
    assert approvals_from_tags(tags) == [Approval("carol", "t0", "ok")]
    assert approvals_from_tags({}) == [] and distinct_approvers([]) == []


def test_json_safe_leaves_no_nan():
    data = {"value": math.nan, "metrics": {"loss": math.inf, "auc": -math.inf, "acc": 0.5},
            "rows": [{"v": math.nan}, (1.0, math.nan)], "name": "NaN", "n": 3, "flag": True}
    safe = json_safe(data)
    text = json.dumps(safe, allow_nan=False)  # raises on any NaN or infinity left
    assert safe == {"value": None, "metrics": {"loss": None, "auc": None, "acc": 0.5},
                    "rows": [{"v": None}, [1.0, None]], "name": "NaN", "n": 3, "flag": True}
    assert "NaN" not in text.replace('"NaN"', "")
