"""Who ran what: each run records its user (MLflow's user_id and `mlflow.user`), the CI actor in a
CI job, else the login name (MLflow wrote `unknown` for every nbops run)."""

from __future__ import annotations

import getpass

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook


def test_runs_record_the_user_and_the_ci_actor(project, mlflow_client, monkeypatch):
    for name in ("GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR"):
        monkeypatch.delenv(name, raising=False)
    write_notebook(project / "notebooks" / "who.ipynb", [("code", "x = 1", ["parameters"])])
    assert main(["run", "notebooks/who.ipynb", "-q"]) == 0
    monkeypatch.setenv("GITLAB_USER_LOGIN", "octocat")
    assert main(["run", "notebooks/who.ipynb", "-q", "-p", "x=2"]) == 0
    users = {r.data.params["x"]: (r.info.user_id, r.data.tags["mlflow.user"]) for r in all_runs(mlflow_client())}
    assert users == {"1": (getpass.getuser(), getpass.getuser()), "2": ("octocat", "octocat")}
