"""Bounded waits against the real pieces of a team's stack: a direct PostgreSQL URI with a wrong
password (before: ~2 min, 47 retry warnings and an "install a driver" hint), S3 down behind the
server (before: `nbops doctor` waited 20 s), and MLflow's basic-auth app (before: `mlflow.user`
was the OS login, not the authenticated user, and model versions carried no user)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import commit_all, git, write_notebook
from tests.mlflow_server import MlflowServer, free_port, server_env, wait_http
from tests.server.stack import S3_ENV

NBOPS = str(Path(sys.executable).with_name("nbops"))
LIMIT_S = 10.0


def _project(root: Path, cells: list | None = None, model: str = "m") -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.nbops]\nruns_dir = "runs"\n')
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n.nbops/\n")
    git(root, "init", "-q", "-b", "main")
    write_notebook(root / "notebooks" / "a.ipynb",
                   cells or [("code", "import nbops\nnbops.record('score', 0.9)")], nbops={"model": {"name": model}})
    commit_all(root, "init")
    return root


def _nbops(project: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "AWS_"))}
    started = time.monotonic()
    proc = subprocess.run([NBOPS, *args], cwd=project, env={**base, **env}, capture_output=True, text=True,
                          timeout=120)
    return proc, time.monotonic() - started


def test_a_wrong_database_password_is_one_line_within_10_s(team_server, tmp_path):
    assert team_server.backend.startswith("postgresql+psycopg2://nbops:nbops-pw@")
    wrong = team_server.backend.replace(":nbops-pw@", ":wrongpw@")
    project = _project(tmp_path / "proj")
    env = {"MLFLOW_TRACKING_URI": wrong}
    for args in (["run", "notebooks/a.ipynb", "--quiet"], ["models", "list", "m"], ["plan", "--all"]):
        proc, took = _nbops(project, env, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr  # no retry warnings
        assert "database refused the login" in lines[0] and "***@127.0.0.1" in lines[0], lines[0]
        assert "wrongpw" not in lines[0] and "driver" not in lines[0], lines[0]
        assert took < LIMIT_S, (args, took)
    proc, took = _nbops(project, env, "doctor", "--format", "json")
    assert proc.returncode == 1 and took < LIMIT_S, (proc.stdout, took)
    check = json.loads(proc.stdout)["checks"][-1]
    assert check["name"] == "database" and not check["ok"] and "refused the login" in check["detail"], check
    assert "driver" not in check["hint"], check


def test_doctor_names_s3_when_it_is_down_behind_the_server(tmp_path):
    """A server proxying artifacts to an S3 endpoint where nothing listens: the artifact check
    fails within seconds, naming S3, while the server's own check passes."""
    dead_s3 = f"http://127.0.0.1:{free_port()}"
    # the server's own S3 client fails fast, as docs/team-server.md sets it up (botocore's default,
    # 5 attempts with backoff, is the server's choice, not nbops's)
    server = MlflowServer(tmp_path / "server", artifacts="s3://nbops-artifacts/mlflow",
                          env={"MLFLOW_S3_ENDPOINT_URL": dead_s3, "AWS_MAX_ATTEMPTS": "2", **S3_ENV}).start()
    try:
        project = _project(tmp_path / "proj")
        proc, took = _nbops(project, {"MLFLOW_TRACKING_URI": server.uri}, "doctor", "--format", "json")
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}  # nothing but the JSON
    assert [(n, c["ok"]) for n, c in checks.items()] == [
        ("store", True), ("tracking server", True), ("open the store", True), ("create a run", True),
        ("artifact store", False)], checks
    artifact = checks["artifact store"]
    assert not artifact["ok"] and "S3" in artifact["detail"] and "S3" in artifact["hint"], artifact
    # not LIMIT_S: the server's own S3 client (its retries, its timeouts) decides how long the
    # proxied probe waits; measured 15-29 s on a loaded 2-core machine. Bounded, and said.
    assert took < 45, took


def test_an_s3_artifact_store_that_is_down_is_found_within_seconds(monkeypatch):
    """doctor's straight S3 probe (an `s3://` artifact store without the server's proxy): botocore
    with short timeouts and one attempt, not its 60 s timeouts and retries."""
    from nbops.lifecycle.doctor import _s3_probe

    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(Exception, match="127.0.0.1"):
        _s3_probe("s3://nbops-artifacts/mlflow/1/abc/artifacts")
    assert time.monotonic() - started < 5


class BasicAuthServer(MlflowServer):
    """`mlflow server --app-name basic-auth`, its admin password from its own auth config."""

    ADMIN = ("admin", "admin-pw-12345")

    def start(self, timeout: float = 180) -> BasicAuthServer:
        config = self.folder / "basic_auth.ini"
        config.write_text(f"[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
                          f"admin_username = {self.ADMIN[0]}\nadmin_password = {self.ADMIN[1]}\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env = server_env(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_FLASK_SERVER_SECRET_KEY="test-secret")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1", "--backend-store-uri", self.backend,
                 "--serve-artifacts", "--artifacts-destination", self.artifacts],
                cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{self.uri}/health", self.proc, timeout, self.log)
        return self

    def create_user(self, name: str, password: str) -> None:
        auth = base64.b64encode(":".join(self.ADMIN).encode()).decode()
        request = urllib.request.Request(f"{self.uri}/api/2.0/mlflow/users/create",
                                         data=json.dumps({"username": name, "password": password}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()


def test_basic_auth_records_the_authenticated_user(tmp_path):
    pytest.importorskip("flask_wtf", reason="mlflow's basic-auth app needs Flask-WTF (nbops[team])")
    server = BasicAuthServer(tmp_path / "server")
    try:
        server.start()
        server.create_user("alice", "alice-pw-12345")
        project = _project(tmp_path / "proj", model="authm", cells=[
            ("code", "import mlflow, nbops\nfrom sklearn.linear_model import LogisticRegression\n"
                     "mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1]),"
                     " name='model', pip_requirements=[])\nnbops.record('score', 0.9)")])
        env = {"MLFLOW_TRACKING_URI": server.uri}
        proc, took = _nbops(project, env, "models", "list", "authm")  # no credentials
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "401" in lines[0], proc.stderr
        assert "MLFLOW_TRACKING_USERNAME" in lines[0] and "MLFLOW_TRACKING_TOKEN" in lines[0], lines[0]
        assert took < LIMIT_S
        alice = {**env, "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "alice-pw-12345",
                 "USER": "os-login", "GITHUB_ACTOR": "ci-actor"}
        proc, _ = _nbops(project, {**alice, "MLFLOW_TRACKING_PASSWORD": "wrong"}, "models", "list", "authm")
        assert proc.returncode == 2 and "refused the login (HTTP 401)" in proc.stderr, proc.stderr
        proc, _ = _nbops(project, alice, "run", "notebooks/a.ipynb", "--quiet")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        from mlflow.tracking import MlflowClient

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLFLOW_TRACKING_USERNAME", "alice")
            mp.setenv("MLFLOW_TRACKING_PASSWORD", "alice-pw-12345")
            client = MlflowClient(server.uri, server.uri)
            exp = client.get_experiment_by_name("notebooks/a")
            (run,) = client.search_runs([exp.experiment_id])
            (version,) = client.search_model_versions("name = 'authm'")
    finally:
        server.stop()
    assert run.data.tags["mlflow.user"] == "alice" and run.info.user_id == "alice", run.data.tags
    assert version.tags.get("nbops.user") == "alice", version.tags
