"""A password in the tracking URI never reaches the terminal (issue 22).

The audit found `http://user:pw@host` printed whole through run/tracking.py's error path ("MLflow
store {uri} refused a new run"): every NbopsError now masks URIs in its own message and hint
(core/errors.py), and the CLI masks its crash line, crash log and --debug traceback. Here each
daily command runs as a subprocess against a tracking URI that carries a password, pointing at a
closed port, at a server answering 500 and at one that stalls; the password must appear in no
output and no crash log.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nbops.core.errors import ExecutionError, NbopsError, TrackingError, first_line, mask_uri
from tests.conftest import commit_all, write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))
PASSWORD = "s3cr3tpw"


# --- the error type itself (in-process) ----------------------------------------------------------

@pytest.mark.parametrize(("text", "masked"), [
    ("http://alice:s3cr3tpw@127.0.0.1:5000/api", "http://***@127.0.0.1:5000/api"),
    ("store postgresql+psycopg://app:s3cr3tpw@db:5432/mlflow refused",
     "store postgresql+psycopg://***@db:5432/mlflow refused"),
    ("https://alice:p@ss:s3cr3tpw@host/x", "https://***@host/x"),  # an unencoded '@' in the password
    ("https://token@host and s3://bucket/key", "https://***@host and s3://bucket/key"),
    ("http://127.0.0.1:5000/?user=a@b.c", "http://127.0.0.1:5000/?user=a@b.c"),  # no credentials
    ("mail alice@example.com", "mail alice@example.com"),
])
def test_mask_uri(text, masked):
    assert mask_uri(text) == masked


def test_every_nbops_error_masks_its_message_and_hint_itself():
    uri = f"http://alice:{PASSWORD}@127.0.0.1:1"
    errors = [NbopsError(f"MLflow store {uri} refused a new run: boom", hint=f"check {uri}"),
              TrackingError(f"MLflow store {uri} refused a new run"),
              ExecutionError(f"kernel {uri}", evalue=f"ConnectionError({uri!r})", hint=uri)]
    for exc in errors:
        shown = [str(exc), exc.one_line(), exc.message, exc.hint or "", repr(exc), *map(str, exc.args)]
        assert all(PASSWORD not in s for s in shown), shown
        assert "http://***@127.0.0.1:1" in exc.one_line()
    assert PASSWORD not in errors[2].evalue
    errors[0].message = f"rewritten later: {uri}"  # set after the fact: masked too
    errors[0].hint = uri
    assert PASSWORD not in errors[0].one_line() + str(errors[0])
    assert first_line(ValueError(f"API request to {uri}/api/2.0 failed\nmore")) == \
        "API request to http://***@127.0.0.1:1/api/2.0 failed"
    from nbops.core.store import mask_uri as store_mask_uri

    assert store_mask_uri is mask_uri  # one function, re-exported where callers always found it


def test_cli_masks_a_bugs_crash_line_and_crash_log(project, monkeypatch, capsys):
    """A bug (not an NbopsError) whose message quotes the URI: one masked line, masked log."""
    from nbops.cli import main as cli_main
    from nbops.cli import store

    def crash(args):
        raise RuntimeError(f"unexpected: http://alice:{PASSWORD}@127.0.0.1:1/x")

    real = store.add_parsers

    def add_parsers(sub):
        real(sub)
        sub.choices["sync"].set_defaults(func=crash)

    monkeypatch.setattr(store, "add_parsers", add_parsers)
    for argv in (["sync"], ["--debug", "sync"]):
        assert cli_main.main(argv) == 3
        err = capsys.readouterr().err
        assert PASSWORD not in err and "http://***@127.0.0.1:1/x" in err
    logs = list((project / ".nbops").glob("crash-*.log"))
    assert len(logs) == 2 and all(PASSWORD not in log.read_text() for log in logs)
    assert all("RuntimeError: unexpected: http://***@127.0.0.1:1/x" in log.read_text() for log in logs)


# --- every daily command, as a subprocess, against three bad servers -----------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block ends: nothing listens there


class _Handler(BaseHTTPRequestHandler):
    """/health and the reachability check's experiments search answer; every other API call
    answers 500 (mode "error"), or stalls past the client's timeout, then 500 (mode "stall"); in
    mode "refuse" the experiment exists and creating a run is refused (the path through
    run/tracking.py's "MLflow store {uri} refused a new run" the audit found printing it)."""

    mode = "error"
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first (mode "stall")
            pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/health":
            self._send(200, b"OK")
        elif path.endswith("/experiments/search") and self.command == "POST":
            self._send(200, b'{"experiments": []}')
        elif path.endswith("/runs/search") and self.mode == "refuse":
            self._send(200, b'{"runs": []}')
        elif path.endswith("/experiments/get-by-name") and self.mode == "refuse":
            self._send(200, b'{"experiment": {"experiment_id": "1", "name": "x", "lifecycle_stage": "active"}}')
        else:
            if self.mode == "stall":
                time.sleep(1.5)  # past the client's 1 s read timeout
            self._send(500, b'{"error_code": "INTERNAL_ERROR", "message": "the store is down"}')

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _server(mode: str) -> Iterator[int]:
    handler = type(f"Handler_{mode}", (_Handler,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


COMMANDS = [
    ["run", "notebooks/exp.ipynb"],
    ["--debug", "run", "notebooks/exp.ipynb"],
    ["sync"],
    ["doctor"],
    ["models", "list", "clf"],
    ["serve", "clf", "--port", "0"],
]


@pytest.fixture
def notebook_project(project):
    """A project with one notebook (its failed runs may land in the spool, for `nbops sync`)."""
    write_notebook(project / "notebooks" / "exp.ipynb", [
        ("code", "x = 1", ["parameters"]),
        ("code", "import nbops\nnbops.record('score', 0.9)"),
    ], {"model": {"name": "clf", "gates": []}})
    commit_all(project, "a notebook")
    return project


def _nbops(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int | None, str]:
    """(exit code, stdout + stderr) of `nbops ARGV`, killed with its kernels after 30 s (exit
    None: what it printed until then still counts)."""
    import signal

    proc = subprocess.Popen([NBOPS, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=30)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


@pytest.mark.parametrize("where", ["closed-port", "error", "stall", "refuse"])
def test_no_command_prints_the_tracking_password(notebook_project, where):
    env = {**os.environ, "NBOPS_TRACKING_RETRY_S": "0.2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "1",
           "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    server = _server(where) if where != "closed-port" else None
    port = server.__enter__() if server else _closed_port()
    env["MLFLOW_TRACKING_URI"] = f"http://alice:{PASSWORD}@127.0.0.1:{port}"
    try:
        outputs = {" ".join(argv): _nbops(argv, notebook_project, env) for argv in COMMANDS}
    finally:
        if server:
            server.__exit__(None, None, None)
    for command, (code, text) in outputs.items():
        assert PASSWORD not in text, f"nbops {command} (exit {code}) printed the password:\n{text}"
    # the commands failed on the store, and said which store, its credentials masked
    said = [command for command, (code, text) in outputs.items()
            if code not in (0, None) and f"http://***@127.0.0.1:{port}" in text]
    assert {"models list clf", "doctor"} <= set(said), outputs
    assert "run notebooks/exp.ipynb" in said or outputs["run notebooks/exp.ipynb"][0] is None, outputs
    for path in notebook_project.rglob("*"):  # crash logs, the spool, executed notebooks
        if path.is_file() and ".git" not in path.parts:
            assert PASSWORD not in path.read_text(errors="replace"), path
