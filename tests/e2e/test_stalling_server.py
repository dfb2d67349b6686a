"""Nothing waits for minutes: every command that touches the store ends within 10 s with one line
naming the cause when the tracking server stalls (accepts the connection, never answers: before,
`nbops plan` hung for minutes and `sync` took 17-24 s), when it is down, and when it asks for a
login (the 401 of MLflow's basic-auth app: the line names the variables to set).

The servers are in the test: a thread that accepts TCP connections and never answers, and a
thread answering 401 to every HTTP request; both on 127.0.0.1 with a bounded lifetime.
"""

from __future__ import annotations

import http.server
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import commit_all, git, write_notebook
from tests.mlflow_server import free_port

NBOPS = str(Path(sys.executable).with_name("nbops"))
LIMIT_S = 10.0
LIFETIME_S = 600.0  # the servers stop by themselves after this, whatever the tests do


@pytest.fixture(scope="module")
def stalling_uri() -> Iterator[str]:
    """A server that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        deadline = time.monotonic() + LIFETIME_S
        while not stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([listener], [], [], 0.2)
            if ready:
                conn, _ = listener.accept()
                held.append(conn)  # kept open, never answered
        for conn in held:
            conn.close()
        listener.close()

    thread = threading.Thread(target=serve, name="stalling-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)


class _Deny(http.server.BaseHTTPRequestHandler):
    def _deny(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _deny

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def login_uri() -> Iterator[str]:
    """A server answering 401 to everything, as MLflow's basic-auth app does without credentials."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Deny)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    timer = threading.Timer(LIFETIME_S, server.shutdown)
    timer.daemon = True
    timer.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    timer.cancel()
    server.shutdown()
    server.server_close()


def _make_project(root: Path, spooled: bool) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.nbops]\nruns_dir = "runs"\n')
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n.nbops/\nreview/\n")
    git(root, "init", "-q", "-b", "main")
    nb = root / "notebooks" / "a.ipynb"
    cells = [("code", "x = 1", ["parameters"]), ("code", "import nbops\nnbops.record('score', 0.9)")]
    write_notebook(nb, cells, nbops={"model": {"name": "m"}})
    (root / "in.csv").write_text("a,b\n1,2\n")
    commit_all(root, "init")
    cells[1] = ("code", "import nbops\nnbops.record('score', 0.95)")
    write_notebook(nb, cells, nbops={"model": {"name": "m"}})
    commit_all(root, "change")  # for `review --base HEAD~1 --run`
    if spooled:  # a run kept while the server was away, for `nbops sync`
        from nbops.run import spool

        record = {"experiment": "notebooks/a", "run_name": "a", "notebook": "notebooks/a.ipynb",
                  "status": "FINISHED", "tags": {}, "params": {}, "metrics": [], "start_time": 0, "end_time": 0}
        spool.write(spool.spool_root(root), record, {})
    return root


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("stalling")
    # `nbops run` notes a non-empty spool on stderr: only `sync` gets the project that has one
    return {"plain": _make_project(base / "plain", False), "spooled": _make_project(base / "spooled", True)}


COMMANDS = {
    "run": ["run", "notebooks/a.ipynb", "--quiet"],
    "sweep": ["sweep", "notebooks/a.ipynb", "-p", "x=1,2", "--quiet"],
    "plan": ["plan", "--all"],
    "sync": ["sync"],
    "models list": ["models", "list", "m"],
    "models promote": ["models", "promote", "m", "1", "--alias", "champion"],
    "models approve": ["models", "approve", "m", "1", "--by", "alice"],
    "predict": ["predict", "m", "--input", "in.csv", "--output", "out.csv"],
    "serve": ["serve", "m", "--port", "{port}"],
    "runs gc": ["runs", "gc"],
    "review --run": ["review", "--base", "HEAD~1", "--run"],
}


def _cases() -> list:
    return list(COMMANDS)


def _env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["MLFLOW_TRACKING_URI"] = uri
    return env


def _nbops(project: Path, uri: str, args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    args = [a.format(port=free_port()) for a in args]
    started = time.monotonic()
    # the subprocess's own timeout is only the test's safety net: a hang fails the time assertion
    proc = subprocess.run([NBOPS, *args], cwd=project, env=_env(uri), capture_output=True, text=True,
                          timeout=LIMIT_S * 6)
    return proc, time.monotonic() - started


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _fails_in_one_line(name: str, projects, uri: str) -> str:
    """Command NAME against URI: exit 2 or 4 within LIMIT_S, its one line of error output."""
    project = projects["spooled" if name == "sync" else "plain"]
    proc, took = _nbops(project, uri, COMMANDS[name])
    assert proc.returncode in (2, 4), (proc.returncode, proc.stdout, proc.stderr)
    assert took < LIMIT_S, f"{name} took {took:.1f} s"
    return _one_line(proc)


@pytest.mark.parametrize("name", _cases())
def test_a_stalled_server_is_one_line_within_10_s(name, projects, stalling_uri):
    line = _fails_in_one_line(name, projects, stalling_uri)
    assert stalling_uri in line and "did not answer" in line and "stalled" in line, line


@pytest.mark.parametrize("name", _cases())
def test_a_server_asking_for_a_login_names_the_variables(name, projects, login_uri):
    line = _fails_in_one_line(name, projects, login_uri)
    assert login_uri in line and "401" in line, line
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        assert var in line, line


def test_a_server_that_is_down_is_one_line_within_10_s(projects):
    port = free_port()  # nothing listens there
    proc, took = _nbops(projects["plain"], f"http://127.0.0.1:{port}", COMMANDS["plan"])
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc)
    assert f"127.0.0.1:{port}" in line and "connection refused" in line, line
    assert took < LIMIT_S


@pytest.mark.parametrize("server", ["stalling", "login"])
def test_doctor_fails_the_server_check_within_10_s(server, projects, stalling_uri, login_uri):
    uri = stalling_uri if server == "stalling" else login_uri
    proc, took = _nbops(projects["plain"], uri, ["doctor", "--format", "json"])
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert not report["ok"] and [c["name"] for c in report["checks"]] == ["store", "tracking server"]
    failed = report["checks"][-1]
    assert not failed["ok"] and uri in failed["detail"] and failed["seconds"] < LIMIT_S
    if server == "login":
        assert "MLFLOW_TRACKING_USERNAME" in failed["hint"] and "MLFLOW_TRACKING_TOKEN" in failed["hint"]
    else:
        assert "stalled" in failed["detail"]
    assert took < LIMIT_S
    assert not (projects["plain"] / "mlflow.db").exists()


def test_doctor_never_creates_a_store(tmp_path):
    """A mistyped sqlite URI: a failed check naming the folder, and nothing created (MLflow made
    the folder and a new store, and every check passed); a fresh project: "no store yet"."""
    project = _make_project(tmp_path / "fresh", False)
    missing = tmp_path / "nonexistent" / "dir" / "mlflow.db"
    proc, _ = _nbops(project, f"sqlite:///{missing}", ["doctor"])
    assert proc.returncode == 1, proc.stdout
    assert f"FAIL  database          the MLflow store {missing}: its folder {missing.parent} does not exist" \
        in proc.stdout, proc.stdout
    assert "hint:" in proc.stdout and not (tmp_path / "nonexistent").exists()

    env = {k: v for k, v in _env("").items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([NBOPS, "doctor", "--format", "json"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    check = json.loads(proc.stdout)["checks"][-1]
    assert check["name"] == "database" and not check["ok"], check
    assert check["detail"] == f"no store yet: {project / 'mlflow.db'} does not exist", check
    assert "nbops run" in check["hint"]
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()
