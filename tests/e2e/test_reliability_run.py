"""The reliability suite, run side: a failing cell counted right, a full disk, a read-only store and
a tracking server lost mid-run, against the real CLI (tests/e2e/test_reliability.py holds the rest).

One row per case: how the environment is broken (for real: a kernel-enforced file size limit, an
immutable file, a real `mlflow server` killed mid-notebook), the expected exit code, a time bound
and the line that must say what happened. After every case: no traceback, no MLflow run left
RUNNING in the local store, no temporary or half-written file under the project.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import write_notebook
from tests.mlflow_server import MlflowServer

NBOPS = str(Path(sys.executable).with_name("nbops"))
RESULTS: list[tuple[str, str, str]] = []
TAG, ERROR_TAG = ["papermill-error-cell-tag"], "papermill-error-cell"

# papermill's own tests/notebooks/broken1.ipynb, cell for cell: it keeps the error-marker cells of
# an earlier papermill run, so the failing `assert False` is the 7th cell of the notebook (papermill
# removes the old markers before it runs, which made nbops say "cell 5")
BROKEN1 = [
    ("markdown", '<span style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; '
                 'font-size:2em;">An Exception was encountered at \'<a href="#papermill-error-cell">'
                 'In [2]</a>\'.</span>', TAG),
    ("markdown", "A markdown cell that makes the execution counts different to indices within the "
                 "list of all cells."),
    ("markdown", f'<span id="{ERROR_TAG}" style="color:red; font-family:Helvetica Neue, Helvetica, '
                 'Arial, sans-serif; font-size:2em;">Execution using papermill encountered an '
                 'exception here and stopped:</span>', TAG),
    ("code", "print(\"We're good.\")"),
    ("markdown", "Another markdown cell"),
    ("markdown", "A third one."),
    ("code", "assert False"),
    ("code", "print \"Shouldn't get here.\""),
]


@dataclass
class Observed:
    code: int
    out: str
    err: str
    took: float


@dataclass
class Case:
    name: str
    expect: int
    seconds: float
    says: str  # a part of the line that says what happened (stdout or stderr)
    cells: list = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    limits: dict[int, int] = field(default_factory=dict)  # RLIMIT_* -> soft and hard limit
    arrange: Callable | None = None  # (project) -> (cleanup or None, extra env), before nbops starts
    during: Callable | None = None  # (project, proc) while nbops runs
    then: Callable | None = None  # (project, Observed) more checks


def _db_rows(project: Path, sql: str) -> list:
    db = project / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(sql).fetchall()


def _preexec(limits: dict[int, int]):
    def apply() -> None:
        # a write past RLIMIT_FSIZE fails with EFBIG, as a full disk fails with ENOSPC (the
        # default action of SIGXFSZ would kill the process instead)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for which, value in limits.items():
            resource.setrlimit(which, (value, value))
    return apply if limits else None


def _leftovers(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.name.endswith(".tmp"))


# -- case: a failing cell after papermill's old error markers ---------------------------------------
def _broken1_then(project: Path, seen: Observed) -> None:
    (error,) = _db_rows(project, "select value from tags where key = 'nbops.error'")
    assert error[0].startswith("cell 7: AssertionError"), error
    (status,) = _db_rows(project, "select status from runs")
    assert status == ("FAILED",)


# -- case: a full disk while the executed notebook is written --------------------------------------
FSIZE = 8 * 1024 * 1024  # the store and logs stay far below it; the executed notebook does not


def _full_disk_then(project: Path, seen: Observed) -> None:
    assert list((project / "runs").rglob("*.ipynb")) == [], "a half-written notebook was left"
    assert _db_rows(project, "select status from runs") == [("FAILED",)]
    (error,) = _db_rows(project, "select value from tags where key = 'nbops.error'")
    assert "cannot write the executed notebook" in error[0]
    artifacts = list(project.rglob("notebook/*.ipynb"))
    assert artifacts == [], "an invalid notebook was logged as the executed notebook"


# -- case: a read-only mlflow.db -------------------------------------------------------------------
def _read_only_store(project: Path):
    from mlflow.tracking import MlflowClient

    db = project / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # a real store, created
    if os.geteuid() == 0:  # root writes through file modes: make the file immutable instead
        done = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a file read-only for root here: {done.stderr.strip()}")
        return lambda: subprocess.run(["chattr", "-i", str(db)], check=True), {}
    db.chmod(0o444)
    return lambda: db.chmod(0o644), {}


def _read_only_then(project: Path, seen: Observed) -> None:
    assert "mlflow.db" in seen.err and seen.out == ""
    assert not list((project / "runs").rglob("*")), "a kernel started"


# -- case: a tracking server lost mid-run ----------------------------------------------------------
SERVERS: dict[str, MlflowServer] = {}


def _start_server(project: Path):
    server = SERVERS["lost"] = MlflowServer(project.parent / "server").start()
    return server.kill, {"MLFLOW_TRACKING_URI": server.uri}


def _kill_server_when_the_notebook_sleeps(project: Path, proc: subprocess.Popen) -> None:
    marker = project / "sleeping"
    deadline = time.monotonic() + 90
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the notebook never started"
    SERVERS["lost"].kill()  # kill -9 of the server (and its workers) mid-notebook
    (project / "killed").touch()


def _lost_then(project: Path, seen: Observed) -> None:
    executed = list((project / "runs").rglob("*.ipynb"))
    assert len(executed) == 1, executed
    (entry,) = (project / ".nbops" / "spool").iterdir()  # the whole record kept for `nbops sync`
    assert f"kept in .nbops/spool/{entry.name}" in seen.out, "the spool entry is not named"
    kept = entry / "artifacts" / "notebook" / executed[0].name
    nb = json.loads(kept.read_text())  # whole and valid, with the last cell's record
    assert any("scrapbook" in json.dumps(o) for o in nb["cells"][1]["outputs"]), nb["cells"][1]
    assert "NOT RECORDED notebooks/case.ipynb" in seen.out  # the summary printed


# the notebook waits (up to 2 minutes) until the test has killed the server: no guessed sleep
SLEEPS = [("code", "import pathlib, time\npathlib.Path('../sleeping').touch()\n"
                   "for _ in range(600):\n"
                   "    if pathlib.Path('../killed').exists():\n"
                   "        break\n"
                   "    time.sleep(0.2)"),
          ("code", "import nbops\nnbops.record('answer', 42)")]

CASES = [
    Case("papermill's broken1.ipynb fails in its 7th cell", 1, 60, "cell 7: AssertionError",
         cells=BROKEN1, then=_broken1_then),
    Case("a full disk while the executed notebook is written", 1, 90,
         "cannot write the executed notebook: File too large",
         cells=[("code", "print('x' * 12_000_000)")], limits={resource.RLIMIT_FSIZE: FSIZE},
         then=_full_disk_then),
    Case("a read-only mlflow.db", 2, 20, "is read-only", cells=[("code", "x = 1")],
         arrange=_read_only_store, then=_read_only_then),
    Case("the tracking server lost mid-run", 4, 150, "`nbops sync` uploads it (the tracking server",
         cells=SLEEPS, env={"NBOPS_TRACKING_RETRY_S": "10"}, arrange=_start_server,
         during=_kill_server_when_the_notebook_sleeps, then=_lost_then),
]


@pytest.fixture(scope="module")
def table(request):
    yield RESULTS
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and RESULTS:
        width = max(len(r[0]) for r in RESULTS)
        reporter.write_line("")
        reporter.write_line(f"reliability suite (run side): {len(RESULTS)} case(s)")
        for case, expected, observed in RESULTS:
            reporter.write_line(f"{case:<{width}}  {expected:<24}  {observed}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reliability_run(case, project, table):
    write_notebook(project / "notebooks" / "case.ipynb", case.cells)
    cleanup, extra_env = case.arrange(project) if case.arrange else (None, {})
    try:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env.update({**case.env, **extra_env})
        start = time.monotonic()
        proc = subprocess.Popen([NBOPS, "run", "notebooks/case.ipynb", "--quiet"], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_preexec(case.limits))
        try:
            if case.during:
                case.during(project, proc)
            out, err = proc.communicate(timeout=case.seconds + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        seen = Observed(proc.returncode, out, err, time.monotonic() - start)
        lines = [line for line in err.splitlines() if line.strip()]
        RESULTS.append((case.name, f"exit {case.expect}, < {case.seconds:g} s",
                        f"exit {seen.code}, {seen.took:.1f} s, {len(lines)} stderr line(s)"))
        assert seen.code == case.expect, (out, err)
        assert seen.took < case.seconds, f"took {seen.took:.1f} s"
        assert "Traceback" not in out + err, err
        assert len(lines) <= 1, err  # at most the one line (the summary goes to stdout)
        assert case.says in out + err, (out, err)
        assert _db_rows(project, "select run_uuid from runs where status = 'RUNNING'") == []
        assert _leftovers(project) == [], "temporary files left behind"
        if case.then:
            case.then(project, seen)
    finally:
        if cleanup:
            cleanup()
