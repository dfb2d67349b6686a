"""A real `mlflow server` for the tests, on a free local port: a sqlite file and proxied
artifacts in its folder by default, or the backend and artifact store given (tests/server's
PostgreSQL + S3). Restartable on the same port, so a test can take it away and bring it back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# coverage.py's subprocess measurement (pyproject's [tool.coverage.run] patch) starts in every
# Python process the tests start, through these variables; a server that never imports nbops
# (`mlflow server`, moto) would only be traced for nothing: importing MLflow takes 40% longer
UNTRACED = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server of another project: this one's, without coverage's
    variables nor a tracking client's (the server is no client of anyone), with EXTRA."""
    drop = (*UNTRACED, "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Until URL answers; a process that exits or a timeout raises with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def stop_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """Stop a process group started here: SIGTERM, then SIGKILL after GRACE seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


class MlflowServer:
    def __init__(self, folder: Path, backend: str | None = None, artifacts: str | None = None,
                 env: dict[str, str] | None = None, workers: int = 1):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.backend = backend or f"sqlite:///{self.folder / 'server.db'}"
        self.artifacts = artifacts or str(self.folder / "artifacts")
        self.env, self.workers = env or {}, workers
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> MlflowServer:
        env = server_env(**self.env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--backend-store-uri", self.backend,
                 "--serve-artifacts", "--artifacts-destination", self.artifacts],
                cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(f"{self.uri}/health", self.proc, timeout, self.log)
        except RuntimeError:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """Gone at once (SIGKILL to its process group), as a crashed or lost server is."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=5)  # uvicorn's worker may wait for open connections
        self.proc = None


@contextmanager
def mlflow_server(folder: Path, **kwargs) -> Iterator[MlflowServer]:
    server = MlflowServer(folder, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
