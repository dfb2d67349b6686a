"""The reliability suite: bad input, signals and a missing server, against the real CLI.

One row per case: the command (a real `nbops` process, signals sent to it for real), the expected
exit code, a time bound, and what must hold afterwards: stderr is one line without a traceback,
no MLflow run is left RUNNING, no temp file or stray store appears, secrets are nowhere. The table
of case / expected / observed is printed at the end of the module (README: Reliability).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))
RESULTS: list[tuple[str, str, str]] = []

SLEEPY = [("code", "secs = 120", ["parameters"]), ("code", "import time\ntime.sleep(secs)")]
PARAMS = [("code", "lr = 0.1\npassword = ''\nname = 'x'", ["parameters"]),
          ("code", "from nbops import record\n"
                   "assert password == 'hunter2' + '-secret'  # the kernel has the real value\nrecord('ok', 1.0)")]

STARTED = "started-notebook"  # written by notebooks/started.ipynb's kernel


@dataclass
class Case:
    name: str
    args: list[str]
    expect: int
    seconds: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    message: str = ""  # a part of the one error line
    signal_when_running: bool = False  # SIGTERM once the run is RUNNING and its notebook runs
    setup: str = ""  # a file to create first: see _setup


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("reliability")
    (root / "pyproject.toml").write_text('[project]\nname = "r"\nversion = "0"\n\n[tool.nbops]\n')
    write_notebook(root / "notebooks" / "sleepy.ipynb", SLEEPY)
    write_notebook(root / "notebooks" / "params.ipynb", PARAMS)
    # says, with a file, that its kernel runs the notebook: the SIGTERM case waits for it
    write_notebook(root / "notebooks" / "started.ipynb", [
        ("code", "secs = 120", ["parameters"]),
        ("code", f"import pathlib, time\npathlib.Path({str(root / STARTED)!r}).touch()\ntime.sleep(secs)")])
    write_notebook(root / "notebooks" / "bad_timeout.ipynb", SLEEPY, nbops={"timeout": True})
    write_notebook(root / "notebooks" / "bad_gpu.ipynb", SLEEPY, nbops={"resources": {"gpu": -1}})
    write_notebook(root / "notebooks" / "bad_name.ipynb", SLEEPY, nbops={"model": {"name": "team/clf"}})
    write_notebook(root / "notebooks" / "outside.ipynb", SLEEPY, nbops={"data": ["../../etc/passwd"]})
    (root / "folder").mkdir()
    (root / "afile").write_text("not a folder")
    meta_list = json.loads((root / "notebooks" / "sleepy.ipynb").read_text())
    (root / "notebooks" / "meta_list.ipynb").write_text(json.dumps({**meta_list, "metadata": []}))
    (root / "notebooks" / "nbformat_str.ipynb").write_text(json.dumps({**meta_list, "nbformat": "4"}))
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        bomb.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    (root / "bomb.yaml").write_text("\n".join(bomb) + "\nsecs: *i\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    yield root
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and RESULTS:
        width = max(len(r[0]) for r in RESULTS)
        reporter.write_line("")
        reporter.write_line(f"reliability suite: {len(RESULTS)} case(s)")
        reporter.write_line(f"{'case':<{width}}  {'expected':<28}  observed")
        for case, expected, observed in RESULTS:
            reporter.write_line(f"{case:<{width}}  {expected:<28}  {observed}")


def _running_runs(root: Path, creating: bool = False) -> list[str]:
    """The store's RUNNING runs. CREATING: a first run may be making the store right now (the
    file there, its tables not yet): none yet, rather than an error that would end the case and
    kill that run in the middle of MLflow's migrations, breaking the store for every later case."""
    db = root / "mlflow.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return [r[0] for r in con.execute("select run_uuid from runs where status = 'RUNNING'")]
    except sqlite3.OperationalError:
        if creating:
            return []
        raise


def _temp_files(tmp: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))


def _run(project: Path, case: Case, tmp: Path) -> tuple[int, str, float]:
    env = {**os.environ, "TMPDIR": str(tmp), **case.env}
    env.pop("MLFLOW_TRACKING_URI", None) if "MLFLOW_TRACKING_URI" not in case.env else None
    start = time.monotonic()
    proc = subprocess.Popen([NBOPS, *case.args], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if case.signal_when_running:  # synchronised on the run itself, not on a guess of its start
            (project / STARTED).unlink(missing_ok=True)
            deadline = time.monotonic() + 180  # a first run creates the store: slow on a busy machine
            while not (_running_runs(project, creating=True) and (project / STARTED).exists()):
                assert proc.poll() is None, f"exited {proc.returncode} before its run: {proc.communicate()}"
                assert time.monotonic() < deadline, "no RUNNING run running its notebook after 180 s"
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            start = time.monotonic()  # the case's seconds: from the signal to the exit
        _, err = proc.communicate(timeout=case.seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err, time.monotonic() - start


CASES = [
    Case("SIGTERM during run", ["run", "notebooks/started.ipynb", "-q"], 143, 30, signal_when_running=True),
    Case("unreachable tracking server", ["run", "notebooks/sleepy.ipynb", "-q"], 2, 10,
         env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, message="not reachable"),
    Case("credentials in an unreachable URI", ["run", "notebooks/sleepy.ipynb", "-q"], 2, 10,
         env={"MLFLOW_TRACKING_URI": "http://alice:s3cret-pw@127.0.0.1:9"}, message="***@127.0.0.1"),
    Case("--timeout nan", ["run", "notebooks/sleepy.ipynb", "--timeout", "nan"], 2, 10,
         message="positive number of seconds"),
    Case("--cell-timeout inf", ["run", "notebooks/sleepy.ipynb", "--cell-timeout", "inf"], 2, 10,
         message="positive number of seconds"),
    Case("NBOPS_TIMEOUT=nan", ["run", "notebooks/sleepy.ipynb"], 2, 10, env={"NBOPS_TIMEOUT": "nan"},
         message="NBOPS_TIMEOUT"),
    Case("NBOPS_TIMEOUT=-5", ["run", "notebooks/sleepy.ipynb"], 2, 10, env={"NBOPS_TIMEOUT": "-5"},
         message="NBOPS_TIMEOUT"),
    Case("-p lr=1e999 (inf)", ["run", "notebooks/params.ipynb", "-p", "lr=1e999"], 2, 10,
         message="finite"),
    Case("-p lr=nan", ["run", "notebooks/params.ipynb", "-p", "lr=nan"], 2, 10, message="finite"),
    Case("-f on a folder", ["run", "notebooks/sleepy.ipynb", "-f", "folder"], 2, 10, message="folder"),
    Case("-f on a binary file", ["run", "notebooks/sleepy.ipynb", "-f", "binary.yaml"], 2, 10,
         message="binary.yaml"),
    Case("-f YAML alias bomb", ["run", "notebooks/sleepy.ipynb", "-f", "bomb.yaml"], 2, 10,
         message="expands to more than"),
    Case("metadata timeout: true", ["run", "notebooks/bad_timeout.ipynb"], 2, 10,
         message="timeout must be a positive number"),
    Case("metadata gpu: -1", ["run", "notebooks/bad_gpu.ipynb"], 2, 10, message="resources.gpu"),
    Case("data path outside the project", ["run", "notebooks/outside.ipynb"], 2, 10,
         message="outside the project"),
    Case("a model name MLflow refuses (team/clf)", ["run", "notebooks/bad_name.ipynb"], 2, 10,
         message="contains a slash"),
    Case("serve --port 70000", ["serve", "m", "--port", "70000"], 2, 10, message="port"),
    Case("check on a missing path", ["check", "nope"], 2, 10, message="no such notebook or folder"),
    Case("models approve without --by", ["models", "approve", "m", "1"], 2, 10, message="--by"),
    Case("run --output-dir onto a file", ["run", "notebooks/sleepy.ipynb", "--output-dir", "afile"], 2, 10,
         message="is a file, not a folder"),
    Case("review --out onto a file", ["review", "--base", "HEAD", "--out", "afile"], 2, 10,
         message="is a file, not a folder"),
    Case("init onto a file", ["init", "afile"], 2, 10, message="is a file, not a folder"),
    Case("run of a notebook whose metadata is a list", ["run", "notebooks/meta_list.ipynb"], 2, 10,
         message="malformed notebook"),
    Case("run of a notebook whose nbformat is a string", ["run", "notebooks/nbformat_str.ipynb"], 2, 10,
         message="malformed notebook"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reliability(project, tmp_path, case):
    before_db = (project / "mlflow.db").exists()
    code, err, took = _run(project, case, tmp_path)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    RESULTS.append((case.name, f"exit {case.expect}, < {case.seconds:g} s",
                    f"exit {code}, {took:.1f} s, {len(lines)} line(s)"))
    assert code == case.expect, err
    assert took < case.seconds, f"took {took:.1f} s"
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert case.message in lines[0], lines[0]
    assert "s3cret-pw" not in err
    assert _running_runs(project) == [], "a run was left RUNNING"
    assert _temp_files(tmp_path) == [], "temp files left behind"
    if case.expect == 2 and not before_db:
        assert not (project / "mlflow.db").exists(), "bad input created a store"
    assert not (project / "notebooks" / "mlflow.db").exists()


@pytest.mark.parametrize("command", [("runs", "gc"), ("models", "list", "nosuch")],
                         ids=["runs gc", "models list"])
def test_kill_9_leaves_a_run_the_next_command_ends(project, tmp_path, command):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([NBOPS, "run", "notebooks/sleepy.ipynb", "-q"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _running_runs(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    orphans = _running_runs(project)
    os.killpg(proc.pid, signal.SIGKILL)  # nbops and its kernel, without a word
    proc.wait()
    assert len(orphans) == 1
    start = time.monotonic()
    done = subprocess.run([NBOPS, *command], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    if command[0] == "models":  # no such model: exit 2, but the orphan was ended on the way
        assert done.returncode == 2 and _running_runs(project) == [], done.stderr
        RESULTS.append(("kill -9 during run, then models list", "orphan ended KILLED",
                        f"exit {done.returncode}, {time.monotonic() - start:.1f} s"))
        return
    RESULTS.append(("kill -9 during run, then runs gc", "orphan ended KILLED",
                    f"exit {done.returncode}, {time.monotonic() - start:.1f} s: {done.stdout.splitlines()[0]}"))
    assert done.returncode == 0, done.stderr
    assert orphans[0][:8] in done.stdout and "KILLED" in done.stdout
    assert _running_runs(project) == []
    with sqlite3.connect(project / "mlflow.db") as con:
        status, = con.execute("select status from runs where run_uuid = ?", orphans).fetchone()
        reaped, = con.execute("select value from tags where run_uuid = ? and key = 'nbops.reaped'",
                              orphans).fetchone()
    assert status == "KILLED" and "is gone" in reaped


def test_a_secret_parameter_is_stored_nowhere(project, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([NBOPS, "run", "notebooks/params.ipynb", "-q", "-p", "password=hunter2-secret"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr  # the kernel got the real value
    found = []
    for path in [project / "mlflow.db", *(project / "runs").rglob("*"), *(project / "mlruns").rglob("*")]:
        if path.is_file() and b"hunter2-secret" in path.read_bytes():
            found.append(str(path.relative_to(project)))
    with sqlite3.connect(project / "mlflow.db") as con:
        logged = dict(con.execute("select key, value from params where key = 'password'").fetchall())
    executed = json.loads(next((project / "runs" / "params").glob("*.ipynb")).read_text())
    RESULTS.append(("-p password=... (a secret)", "stored nowhere, kernel has it",
                    f"exit {done.returncode}, found in {found or 'no file'}"))
    assert found == []
    assert logged == {"password": "***"}
    assert executed["metadata"]["papermill"]["parameters"]["password"] == "***"
