"""One real Ray cluster on loopback for the Ray tests (tests/integration/test_ray.py and
test_pipeline_ray.py share it: conftest's "ray" xdist group runs both on one worker, one after
the other; tests/integration/conftest.py starts it for the first and stops it after the last).

`ray start --head --block` runs in a process group of its own and is stopped by signalling that
process (it stops the processes it started), never by `ray stop`, which stops every Ray process on
the machine. The dashboard's and its agent's fixed default ports (8265, 52365) are free ones
instead (Ray Client's 10001 is not opened: this venv has no `ray[client]`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mlflow_server import free_port, server_env

BIN = Path(sys.executable).parent
ATTEMPTS = 3  # a raylet that never registered (seen once on a loaded CI machine) is started afresh
WAIT_S = 80  # per attempt: all of them within pytest-timeout's 300 s, which also bounds a fixture


def _raylet_logs(temp: Path) -> str:
    """What the head's own logs say about why a raylet never registered: the lines of each that
    name an error (a fatal check's message comes before its stack trace, which a plain tail showed
    alone), then its last lines."""
    tails = []
    for name in ("raylet.err", "raylet.out", "gcs_server.err", "gcs_server.out", "ray_process_exit.log"):
        for path in temp.glob(f"session_2*/logs/{name}"):  # not session_latest, a link to it
            lines = path.read_text(errors="replace").splitlines()
            errors = [line for line in lines if any(w in line for w in ERROR_WORDS)][-10:]
            tails.append(f"--- {path.name}\n" + "\n".join(errors + ["..."] + lines[-5:]))
    return "\n".join(tails)


# Ray's own Python processes not measured by coverage.py (tests/mlflow_server.py's UNTRACED): traced,
# the raylet's dashboard agent started so slowly beside a busy suite that the raylet gave up
# waiting for it ("Check failed: ... Timed out waiting for file .../metrics_agent_port_...", 27 s
# after the start) and the head never came up, in three tries of 80 s. nbops's side of a Ray run,
# the driver, is measured in the test's own process.
ERROR_WORDS = ("FATAL", "Check failed", "ERROR", "rror:", "ailed", "imed out", "navailable", "Killed")


class Head:
    """One `ray start --head --block` process and its temp dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.log = self.temp.parent / f"{self.temp.name}.log"
        ports = {flag: free_port() for flag in ("--dashboard-port", "--dashboard-agent-listen-port")}
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                 f"--port={self.port}", *(f"{flag}={port}" for flag, port in ports.items()),
                 "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                 f"--temp-dir={self.temp}"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                # on a loaded 2-core CI machine the raylet can register after Ray's own 30 s wait
                env={**server_env(), "RAY_raylet_start_wait_time_s": str(WAIT_S - 10)})

    def wait_up(self) -> str | None:
        """None once the head is up (the address file is written before `--block` starts
        waiting), else why not."""
        deadline = time.monotonic() + WAIT_S
        while not (self.temp / "ray_current_cluster").exists():
            if self.proc.poll() is not None:
                return f"ray start exited {self.proc.returncode}"
            if time.monotonic() > deadline:
                return f"no Ray head after {WAIT_S} s"
            time.sleep(0.2)
        return None

    def why(self, reason: str) -> str:
        return f"{reason}:\n{self.log.read_text(errors='replace')[-3000:]}\n{_raylet_logs(self.temp)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # `ray start --block` stops its raylet, GCS and workers on SIGTERM
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of this cluster's group is left
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.unlink(missing_ok=True)
        shutil.rmtree(self.temp, ignore_errors=True)


def ray_cluster() -> Head:
    """A head node that is up (started up to ATTEMPTS times); the caller stops it."""
    failures = []
    for _ in range(ATTEMPTS):
        head = Head()
        try:
            reason = head.wait_up()
        except BaseException:  # pytest-timeout or ^C while it starts: no head left behind
            head.stop()
            raise
        if reason is None:
            return head
        failures.append(head.why(reason))
        head.stop()
    raise AssertionError("\n\n".join(failures))
