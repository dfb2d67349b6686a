"""Loud configuration in CI: with `require_tracking_server`, a missing or empty MLFLOW_TRACKING_URI
is a one-line error naming the secret before any store is opened; elsewhere an empty one means
unset, with a note."""

from __future__ import annotations

import pytest

from nbops.cli.main import main
from nbops.core.config import check_tracking_server, in_ci, load_settings
from nbops.core.errors import ConfigError

CI_VARS = ("CI", "GITHUB_ACTIONS", "GITLAB_CI")


@pytest.fixture
def required(tmp_path, monkeypatch):
    """A project with require_tracking_server = true as the working directory, no CI variable."""
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\nrequire_tracking_server = true\n")
    monkeypatch.chdir(tmp_path)
    for var in (*CI_VARS, "MLFLOW_TRACKING_URI", "NBOPS_TRACKING_URI", "NBOPS_REQUIRE_TRACKING_SERVER"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.mark.parametrize("ci_var", CI_VARS)
@pytest.mark.parametrize("uri", [None, "", "  "])
def test_ci_without_a_tracking_uri_is_one_line_naming_the_secret(required, monkeypatch, capsys, ci_var, uri):
    monkeypatch.setenv(ci_var, "true")
    if uri is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["plan", "--all"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "MLFLOW_TRACKING_URI is" in err and ci_var in err and "require_tracking_server" in err
    assert "repository secret" in err
    assert not (required / "mlflow.db").exists() and not (required / "mlruns").exists()


def test_commands_that_never_open_the_store_are_not_stopped(required, monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    assert main(["config"]) == 0
    assert main(["check", "--no-lint"]) == 0


def test_the_check_is_only_in_ci_and_only_when_required(required, monkeypatch):
    settings = load_settings(required)
    assert settings.require_tracking_server and settings.sources["tracking_uri"] == "default"
    assert check_tracking_server(settings, {}) == ""  # not CI: the embedded store, silently
    assert "embedded store sqlite:///mlflow.db" in check_tracking_server(settings, {"MLFLOW_TRACKING_URI": ""})
    with pytest.raises(ConfigError):
        check_tracking_server(settings, {"GITLAB_CI": "true"})
    assert check_tracking_server(settings, {"CI": "false"}) == ""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert check_tracking_server(load_settings(required), {"CI": "true"}) == ""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("NBOPS_REQUIRE_TRACKING_SERVER", "false")  # a project may opt out per job
    assert check_tracking_server(load_settings(required), {"CI": "true"}) == ""


def test_empty_uri_means_unset_and_flags_are_booleans(required, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    settings = load_settings(required)
    assert settings.tracking_uri == "sqlite:///mlflow.db"
    monkeypatch.setenv("NBOPS_REQUIRE_TRACKING_SERVER", "maybe")
    with pytest.raises(ConfigError, match="require_tracking_server must be true or false"):
        load_settings(required)
    (required / "pyproject.toml").write_text('[tool.nbops]\nrequire_tracking_server = "yes please"\n')
    monkeypatch.delenv("NBOPS_REQUIRE_TRACKING_SERVER")
    with pytest.raises(ConfigError, match="must be true or false"):
        load_settings(required)
    assert in_ci({"GITHUB_ACTIONS": "true"}) == "GITHUB_ACTIONS" and in_ci({"CI": "0"}) == ""
