"""Whatever a notebook starts ends with its run (real kernels, real signals, `nbops run` in a
subprocess): processes in the kernel's group and ones that left it with setsid, and after a
`kill -9` of nbops, its kernel's socket folder and leftover processes once the next run or
`nbops runs gc` passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))

START = '''import os, subprocess, sys
pids = [
    subprocess.Popen(["setsid", "sleep", "300"]).pid,  # a new session: out of the kernel's group
    subprocess.Popen(["sleep", "300"]).pid,  # in the kernel's group
    subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(300)"]).pid,
    int(subprocess.run(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"],  # a daemon: its parent gone
                       capture_output=True, text=True).stdout),
]
'''


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def tmpdir_env(tmp_path):
    """nbops's environment with a temporary folder of its own (short: sockets live there); the
    processes a failing test leaves are killed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="nbk", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(folder)}
    env.pop("NBOPS_KERNEL_TOKENS", None)
    started: list[int] = []
    yield env, folder, started
    for pid in started:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for leftover in folder.glob("*"):
        subprocess.run(["rm", "-rf", str(leftover)], check=False)
    folder.rmdir()


def _pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()]


def _run(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([NBOPS, "run", "--no-track", "-q", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_processes_a_notebook_started_end_with_the_run(project, tmpdir_env):
    env, tmp, started = tmpdir_env
    pid_file = project / "pids.txt"
    nb = write_notebook(project / "spawn.ipynb", [
        ("code", START + f"open({str(pid_file)!r}, 'w').write(' '.join(map(str, pids)))")])
    done = _run(env, str(nb))
    assert done.returncode == 0, done.stdout + done.stderr
    pids = _pids(pid_file)
    started += pids
    assert len(pids) == 4
    _wait_for(lambda: not any(_alive(p) for p in pids), 5, f"the notebook's processes end: {pids}")
    assert not list(tmp.glob("nbops-kernel-*"))  # the socket folder is removed after the run


def _kill_nbops_mid_run(project: Path, env: dict, tmp: Path, started: list[int]) -> tuple[list[int], Path]:
    """`nbops run` SIGKILLed while its notebook's processes run: (those still running, the
    kernel's socket folder, in TMP)."""
    pid_file = project / f"pids-{tmp.name}.txt"
    long = write_notebook(project / f"long-{tmp.name}.ipynb", [
        ("code", START + f"pids.append(os.getpid())\nopen({str(pid_file)!r}, 'w').write(' '.join(map(str, pids)))"),
        ("code", "import time\ntime.sleep(300)")])
    nbops = subprocess.Popen([NBOPS, "run", "--no-track", "-q", str(long)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 5, 60,
                  "the first cell ran")
    finally:
        nbops.kill()  # SIGKILL: no finally of nbops's runs
        nbops.wait()
    pids = _pids(pid_file)
    started += pids
    *children, kernel = pids
    [folder] = tmp.glob(f"nbops-kernel-{nbops.pid}-*")  # named after its owner
    # ipykernel ends itself when its parent is gone; what it started does not
    _wait_for(lambda: not _alive(kernel), 10, "the kernel ends with nbops")
    assert folder.is_dir() and any(_alive(p) for p in children)
    return children, folder


def test_a_killed_nbops_leaves_nothing_once_the_next_run_passes(project, tmpdir_env):
    env, tmp, started = tmpdir_env
    children, folder = _kill_nbops_mid_run(project, env, tmp, started)
    quick = write_notebook(project / "quick.ipynb", [("code", "x = 1")])
    done = _run(env, str(quick))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not folder.exists()
    _wait_for(lambda: not any(_alive(p) for p in children), 5, f"the killed run's processes end: {children}")
    assert not list(tmp.glob("nbops-kernel-*"))


def test_a_sweep_keeps_to_its_own_temporary_folder(project, tmpdir_env):
    """Two jobs with a TMPDIR each (parallel CI jobs on one runner): one's `nbops runs gc` neither
    ends nor counts what the other's killed nbops left; the other's own sweep does."""
    env, tmp, started = tmpdir_env
    children, folder = _kill_nbops_mid_run(project, env, tmp, started)
    other = Path(tempfile.mkdtemp(prefix="nbk", dir="/tmp"))
    try:
        gc = [NBOPS, "runs", "gc", "--tracking-uri", f"sqlite:///{project}/gc.db"]
        done = subprocess.run(gc, env={**env, "TMPDIR": str(other)}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "leftover" not in done.stdout, done.stdout  # nothing of its scope to sweep
        assert folder.is_dir() and all(_alive(p) for p in children)
        done = subprocess.run(gc, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{len(children)} leftover kernel process(es) killed, 1 kernel socket folder(s) removed" in done.stdout
        _wait_for(lambda: not any(_alive(p) for p in children), 5, f"the killed run's processes end: {children}")
        assert not folder.exists()
    finally:
        other.rmdir()


def test_runs_gc_sweeps_what_a_killed_nbops_left(project, tmpdir_env, monkeypatch, capsys):
    """A dead owner's socket folder and a process carrying its kernel's token: `nbops runs gc`
    removes and kills them; a live owner's (this test's process) are left alone. In process: the
    command's MLflow import is paid once a session."""
    from nbops.cli.main import main
    from nbops.run.kernel_procs import OWNER_FILE, new_token, scope
    from nbops.run.orphans import owner

    env, tmp, started = tmpdir_env
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid whose process is gone
    dead_folder = tmp / f"nbops-kernel-{gone.pid}-1-abcd1234"
    dead_folder.mkdir(mode=0o700)
    (dead_folder / "k-1").write_text("")
    live_folder = Path(tempfile.mkdtemp(prefix=f"nbops-kernel-{os.getpid()}-", dir=tmp))
    (live_folder / OWNER_FILE).write_text(owner())
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True,
                              env={**env, "NBOPS_KERNEL_TOKENS": f"{gone.pid}-1-{scope()}-abcd1234"})
    kept = subprocess.Popen(["sleep", "300"], start_new_session=True,
                            env={**env, "NBOPS_KERNEL_TOKENS": new_token()})
    started += [orphan.pid, kept.pid]
    assert main(["runs", "gc"]) == 0
    assert "1 leftover kernel process(es) killed, 1 kernel socket folder(s) removed" in capsys.readouterr().out
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert not dead_folder.exists()
    assert live_folder.is_dir() and kept.poll() is None
