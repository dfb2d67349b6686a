"""Everything `nbops lab` starts ends with it (issue 22).

The lab's process does not become JupyterLab (it did, by exec): JupyterLab ends cleanly on
SIGTERM and SIGINT, but SIGHUP's default action and `kill -9` end it without its clean-up, and
even its clean-up left the MLflow UI's uvicorn answering for a while; kernels, the UI and notebook
jobs lived on. So the lab's process stays, as JupyterLab's parent, and:

- every process the lab starts, at any depth, carries the lab's random id in its environment
  (`NBOPS_LAB_ID`, as Jenkins marks a build's processes), so the lab finds them all, even the
  ones whose parent is gone and that init adopted, and never a process of anything else;
- on SIGTERM, SIGINT or SIGHUP, or when JupyterLab exits by itself (File > Shut Down), the lab
  sends SIGTERM to JupyterLab and to everything else carrying its id at once (one after the
  other took over five seconds on a busy machine), and SIGKILL to whatever is left two seconds
  later (uvicorn waits for open connections to close, a kernel may be busy): all gone within
  about two seconds;
- a watchdog (`python -m nbops.lab.processes`, in its own session so no signal meant for the lab
  or its group reaches it) polls its parent, the lab, and does the same once the lab is gone:
  `kill -9` of the lab included;
- JupyterLab gets SIGTERM from the kernel when the lab dies (PR_SET_PDEATHSIG, Linux), and runs
  in its own process group with no terminal input: a Ctrl-C in the terminal reaches the lab only,
  which stops JupyterLab without its "Shutdown this Jupyter server (y/[n])?" question;
- the one process meant to outlive the lab, a browser it opens, is started without the id
  (`browse`, JupyterLab's browser command).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ID_VAR = "NBOPS_LAB_ID"
GRACE = 2.0  # seconds between SIGTERM and SIGKILL
POLL = 0.1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SOCKET_PATH_MAX = 104  # sun_path: 104 bytes on macOS and the BSDs, 108 on Linux


def private_folder(name: str) -> Path:
    """A new folder only this user can enter (mode 0700), short enough for a Unix socket NAME in
    it: the user's temporary folder, else /tmp."""
    for parent in (None, "/tmp"):
        folder = Path(tempfile.mkdtemp(prefix="nbops-lab-", dir=parent))
        if len(os.fsencode(folder / name)) < _SOCKET_PATH_MAX:
            return folder
        folder.rmdir()
    raise OSError(f"no temporary folder short enough for a Unix socket ({folder})")


def parent_death_signal(sig: int) -> None:
    """Have the kernel send SIG to this process when its parent ends (Linux; elsewhere the lab's
    watchdog is the guard)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG


def marked(lab_id: str) -> list[int]:
    """The running processes of this user that carry LAB_ID in their environment."""
    needle = f"{ID_VAR}={lab_id}".encode()
    if os.path.isdir("/proc/self"):
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:  # another user's process: not readable; a zombie's environment: empty
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        pids.append(int(name))
            except OSError:
                continue
        return pids
    import psutil  # macOS and the BSDs: no /proc (psutil comes with ipykernel)

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(ID_VAR) == lab_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def end_marked(lab_id: str, keep: Sequence[int] = (), grace: float = GRACE) -> None:
    """SIGTERM to every process carrying LAB_ID (but this one and KEEP), SIGKILL to those left
    after GRACE seconds. The id is looked up again on every round, so a reused pid is never hit
    and a process started meanwhile (a kernel restarted by a dying server) is ended too."""
    spare = {os.getpid(), *keep}
    killing_at = time.monotonic() + grace
    termed: set[int] = set()
    while True:
        pids = [pid for pid in marked(lab_id) if pid not in spare]
        now = time.monotonic()
        if not pids or now > killing_at + 2 * grace:
            return
        for pid in pids:
            sig = signal.SIGKILL if now >= killing_at else signal.SIGTERM
            if sig == signal.SIGKILL or pid not in termed:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
                termed.add(pid)
        time.sleep(POLL / 2)


def _start_jupyter() -> None:
    """In JupyterLab's process between fork and exec: its own process group (the terminal's
    Ctrl-C reaches the lab only), SIGTERM when the lab dies."""
    os.setpgid(0, 0)
    parent_death_signal(signal.SIGTERM)


def start_background(command: list[str], env: dict[str, str], log: Path) -> int:
    """COMMAND (the MLflow UI) beside JupyterLab, marked as the lab's like everything else, its
    output in LOG; its pid."""
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_start_jupyter).pid


def supervise(argv: list[str], folder: Path | None = None,
              background: Sequence[tuple[list[str], dict[str, str], Path]] = ()) -> int:
    """Run ARGV (JupyterLab) as the lab's child until it exits or the lab gets SIGTERM, SIGINT
    or SIGHUP; then end everything the lab started and remove FOLDER (the MLflow UI's socket).
    BACKGROUND: (command, extra environment, log file) started at once beside it."""
    lab_id = uuid.uuid4().hex
    env = {**os.environ, ID_VAR: lab_id}
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in STOP_SIGNALS}
    jupyter: subprocess.Popen[bytes] | None = None
    keep: list[int] = []
    code = 0  # stopped on request: JupyterLab itself exits 0 then
    try:
        jupyter = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                   preexec_fn=_start_jupyter)  # one thread here: fork is safe
        keep.append(subprocess.Popen(
            [sys.executable, "-m", "nbops.lab.processes", str(os.getpid()), lab_id,
             str(folder or "")],
            env=env, stdin=subprocess.DEVNULL, start_new_session=True).pid)
        for command, extra, log in background:
            start_background(command, {**env, **extra}, log)
        while not received:
            try:
                code = jupyter.wait(POLL)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if jupyter is not None:
            end_marked(lab_id, keep)
            jupyter.poll()  # reaped
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code


def watch(parent: int, lab_id: str, folder: str) -> None:
    """The watchdog: once the lab (PARENT) is gone, however it ended, what it started ends."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.getppid() == parent:
        time.sleep(POLL)
    end_marked(lab_id)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def browse(url: str) -> None:
    """JupyterLab's browser command: the user's browser (webbrowser: $BROWSER, else the
    desktop's), without the lab's id, so that a browser this starts is not ended with the lab."""
    import webbrowser

    os.environ.pop(ID_VAR, None)
    webbrowser.open(url)


BROWSER = f"{shlex.quote(sys.executable)} -m nbops.lab.processes --browse %s"

if __name__ == "__main__":
    if sys.argv[1] == "--browse":
        browse(sys.argv[2])
    else:
        watch(int(sys.argv[1]), sys.argv[2], sys.argv[3])
