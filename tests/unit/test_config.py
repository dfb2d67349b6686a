import pytest

from nbops.core.config import describe, load_settings
from nbops.core.errors import ConfigError


def test_precedence_default_pyproject_env_flag(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nruns_dir = "out"\ntimeout = 10\n')
    sub = tmp_path / "notebooks"
    sub.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = load_settings(sub)
    assert s.root == tmp_path.resolve()
    assert (s.runs_dir, s.sources["runs_dir"]) == ("out", "pyproject.toml")
    assert (s.timeout, s.notebooks_dir, s.sources["notebooks_dir"]) == (10.0, "notebooks", "default")
    assert s.resolved_tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("NBOPS_RUNS_DIR", "envruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    s = load_settings(sub)
    assert (s.runs_dir, s.sources["runs_dir"]) == ("envruns", "NBOPS_RUNS_DIR")
    assert s.resolved_tracking_uri == "http://127.0.0.1:5000"
    s = load_settings(sub, flags={"runs_dir": "flagruns", "timeout": None})
    assert (s.runs_dir, s.sources["runs_dir"], s.timeout) == ("flagruns", "flag", 10.0)
    rows = {k: (v, src) for k, v, src in describe(s)}
    assert rows["runs_dir"] == ("flagruns", "flag")


def test_bad_config_is_reported(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\nrun_dir = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'run_dir'"):
        load_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.nbops]\ntimeout = "soon"\n')
    with pytest.raises(ConfigError, match="timeout must be float"):
        load_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.nbops\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(tmp_path)


def test_registry_and_monitor_tables(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbops.registry]\nrequire_approval = true\nchampion_gates = ["accuracy >= 0.9"]\n'
        "[tool.nbops.monitor]\npsi = 0.1\nmax_drifted_features = 2\n")
    s = load_settings(tmp_path)
    assert s.registry == {"require_approval": True, "champion_gates": ["accuracy >= 0.9"],
                          "auto_promote": False}
    assert (s.monitor["psi"], s.monitor["max_drifted_features"], s.monitor["p_value"]) == (0.1, 2, 0.01)
    assert s.sources["registry"] == s.sources["monitor"] == "pyproject.toml"
    assert load_settings(tmp_path.parent).monitor["psi"] == 0.2  # defaults elsewhere
    for body, message in [
        ("[tool.nbops.registry]\nrequire_aproval = true\n", "unknown key 'require_aproval'"),
        ("[tool.nbops.registry]\nrequire_approval = 1\n", "require_approval must be bool"),
        ("[tool.nbops.monitor]\npsi = \"high\"\n", "psi must be float"),
        ("[tool.nbops.monitor]\nmax_drifted_features = true\n", "max_drifted_features must be int"),
        ('[tool.nbops.registry]\nchampion_gates = ["accuracy >> 1"]\n', "bad gate"),
        ("[tool.nbops]\nregistry = 3\n", "must be a table"),
    ]:
        (tmp_path / "pyproject.toml").write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_settings(tmp_path)


@pytest.mark.parametrize("body", ["bins = 1", "p_value = 0", "p_value = 1.5", "psi = -0.1",
                                  "max_drifted_features = -1", "reproduce_tolerance = -1e-6"])
def test_monitor_thresholds_out_of_range(tmp_path, body):
    (tmp_path / "pyproject.toml").write_text(f"[tool.nbops.monitor]\n{body}\n")
    with pytest.raises(ConfigError, match=body.split()[0] + " must be"):
        load_settings(tmp_path)
