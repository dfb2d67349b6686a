"""`nbops init --ci gitlab|github`: only the project's own CI's runners, and a .gitignore that
keeps `pip install -e .`'s files out (issue 23)."""

from __future__ import annotations

import tomllib

from nbops.ci.init import init_project
from nbops.core.config import DEFAULT_GITLAB_RUNNERS, load_settings


def test_gitlab_project_gets_gitlab_runners_and_no_github_labels(tmp_path):
    init_project(tmp_path / "g", ci="gitlab")
    text = (tmp_path / "g" / "pyproject.toml").read_text()
    assert "ubuntu-latest" not in text and "self-hosted" not in text and "runs-on" not in text
    runners = tomllib.loads(text)["tool"]["nbops"]["runners"]
    assert set(runners) == {"gitlab"} and runners["gitlab"]["gpu"] == ["gpu"] and runners["gitlab"]["cpu"] == []
    assert load_settings(tmp_path / "g").runners["gitlab"] == DEFAULT_GITLAB_RUNNERS
    assert (tmp_path / "g" / ".gitlab-ci.yml").is_file() and not (tmp_path / "g" / ".github").exists()


def test_github_project_keeps_its_labels_and_both_ignore_egg_info(tmp_path):
    init_project(tmp_path / "h", ci="github")
    runners = tomllib.loads((tmp_path / "h" / "pyproject.toml").read_text())["tool"]["nbops"]["runners"]
    assert runners == {"cpu": "ubuntu-latest", "gpu": ["self-hosted", "linux", "x64", "gpu"]}
    init_project(tmp_path / "g", ci="gitlab")
    for name in ("h", "g"):
        ignored = (tmp_path / name / ".gitignore").read_text().splitlines()
        assert "*.egg-info/" in ignored and ".venv/" in ignored and "mlruns/" in ignored
