"""Everything a kernel started ends with its run: its processes, setsid ones too, and its folder.

jupyter_client starts a kernel in a session of its own and, as nbops ends a kernel by killing
it, kills that process group. A process a notebook starts in a new session (`setsid`,
`start_new_session=True`, a daemon's double fork) leaves the group and outlived the run. And when
nbops itself is killed (`kill -9`, a lost terminal), ipykernel notices its parent is gone and
exits, but its children stay and so does the kernel's socket folder (`run/kernel_sockets.py`).

How descendants are found: a marker in the environment. Each kernel starts with a token of its
own appended to `NBOPS_KERNEL_TOKENS` (owner pid, its start time, a random part); every process
the notebook starts inherits it, whatever session or parent it ends up with. When the kernel is
gone, nbops kills every process of this user whose /proc/PID/environ carries the token. The other
ways were weaker: a process group or session is left by setsid; a child subreaper
(prctl(PR_SET_CHILD_SUBREAPER)) would collect the orphans of every kernel of a parallel batch in
one process, with nothing saying which kernel they came from, and changes nbops's process for
every library in it; cgroups are rarely writable by the user. A process started without the
variable (`env -u NBOPS_KERNEL_TOKENS ...`, `env -i ...`) is not the run's: the way to start
something meant to outlive it. Without /proc (macOS) only the process group is killed, by
jupyter_client, as before.

The kernel's TMPDIR is a folder inside its socket folder, so whatever temporary files the kernel
leaves (it is killed, so its exit-time cleanups never run) go with the folder.

What a killed nbops leaves is swept by the next kernel nbops starts and by `nbops runs gc`
(`sweep`): processes whose token names an owner that is gone, and socket folders whose owner (a
file `owner` in it, `host:pid:start`, as `run/orphans.py` writes owners; the pid also in the
folder's name) is gone. A sweep keeps to its own temporary folder, where the socket folders live:
a token also names a scope (a digest of the temporary folder's path), and a sweep kills only the
processes of its scope. Two jobs on one machine with a TMPDIR each (parallel CI jobs, test workers)
never end what the other's killed nbops left, nor count it; with one TMPDIR, as usual, every
leftover of this user is swept. A token without a scope (an older nbops) is anyone's to sweep.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.run.kernel_sockets import FOLDER_PREFIX, kernel_sockets
from nbops.run.orphans import owner, owner_alive

MARK = "NBOPS_KERNEL_TOKENS"  # space-separated: a kernel started inside a kernel's run adds its own
OWNER_FILE = "owner"
SCOPE_FILE = "scope"
TMP_DIR = "tmp"  # the kernel's TMPDIR, in its folder: removed with it, or swept with it
_KILL_ROUNDS = 20  # each round kills what the previous round's processes forked meanwhile
_NO_OWNER_FILE_S = 24 * 3600.0  # a folder neither named nor marked by its owner: its age decides
_swept = threading.Event()


def _owner_parts() -> tuple[str, str]:
    _, pid, start = owner().split(":")
    return pid, start or "0"


def scope() -> str:
    """This process's sweep scope: a digest of its temporary folder's real path."""
    path = os.path.realpath(tempfile.gettempdir())
    return hashlib.sha256(path.encode()).hexdigest()[:8]


def new_token() -> str:
    pid, start = _owner_parts()
    return f"{pid}-{start}-{scope()}-{uuid.uuid4().hex[:12]}"


def _in_scope(token: str, mine: str) -> bool:
    """Whether TOKEN is a sweep of scope MINE may end (a scope-less token is anyone's)."""
    parts = token.split("-")
    return len(parts) < 4 or parts[2] == mine


def marked_env(env: dict[str, str] | None, token: str) -> dict[str, str]:
    """ENV (nbops's own environment when None) with TOKEN added to the marker."""
    base = dict(os.environ if env is None else env)
    base[MARK] = " ".join([*base.get(MARK, "").split(), token])
    return base


def _token_owner_alive(token: str) -> bool:
    """Whether the process that started TOKEN's kernel still runs (True when unsure)."""
    pid, _, rest = token.partition("-")
    start = rest.partition("-")[0]
    if not pid.isdigit():
        return True
    return owner_alive(f"{socket.gethostname()}:{pid}:{'' if start == '0' else start}") is not False


def _tokens(pid: int) -> list[str] | None:
    """The tokens in PID's environment; None when it carries none (a zombie's environ is empty)."""
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return None
    needle = MARK.encode() + b"="
    if needle not in data:
        return None
    for item in data.split(b"\0"):
        if item.startswith(needle):
            return item[len(needle):].decode(errors="replace").split()
    return None


def _marked_pids() -> list[int]:
    """This user's processes (nbops's own aside) that carry the marker."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    uid, me = os.getuid(), os.getpid()
    pids = []
    for entry in os.scandir(proc):
        if entry.name.isdigit() and int(entry.name) != me:
            try:
                if entry.stat().st_uid == uid and _tokens(int(entry.name)) is not None:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill_if(pid: int, select: Callable[[list[str]], bool]) -> bool:
    """SIGKILL PID if its tokens are SELECTed. Through a pidfd where there is one: the environment
    is read again once the pidfd holds the process, so a pid reused meanwhile is never hit."""
    try:
        fd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        tokens = _tokens(pid)
        if tokens is None or not select(tokens):
            return False
        if fd is not None:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True
    except OSError:  # ended meanwhile
        return False
    finally:
        if fd is not None:
            os.close(fd)


def kill_marked(select: Callable[[list[str]], bool]) -> int:
    """SIGKILL this user's processes whose tokens SELECT accepts, until none is left (a process
    may fork while its siblings are killed): how many were killed."""
    killed: set[int] = set()
    for _ in range(_KILL_ROUNDS):
        hit = {pid for pid in _marked_pids() if _kill_if(pid, select)}
        if not hit:
            break
        killed |= hit
    return len(killed)


def _folders() -> list[Path]:
    """The socket folders of this scope: those in the temporary folder, and those in /tmp (where
    a folder goes when the temporary folder is too deep for a socket's address) marked with it."""
    mine, home = scope(), Path(tempfile.gettempdir())
    found = list(home.glob(f"{FOLDER_PREFIX}*"))
    if Path("/tmp").resolve() != home.resolve():
        for folder in Path("/tmp").glob(f"{FOLDER_PREFIX}*"):
            try:
                marked = (folder / SCOPE_FILE).read_text(encoding="utf-8").strip()
            except OSError:
                marked = ""  # an older nbops's, or killed before writing it: anyone's
            if marked in ("", mine):
                found.append(folder)
    return found


def _folder_owner_alive(folder: Path) -> bool:
    """Whether the nbops that made FOLDER still runs (True when unsure: another host's owner)."""
    try:
        tag = (folder / OWNER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        tag = ""
    if tag:
        return owner_alive(tag) is not False
    parts = folder.name[len(FOLDER_PREFIX):].split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():  # killed before writing the file
        return _token_owner_alive(f"{parts[0]}-{parts[1]}-x")
    try:  # an older nbops's folder: no owner to ask
        return time.time() - folder.stat().st_mtime < _NO_OWNER_FILE_S
    except OSError:
        return True


def sweep() -> tuple[int, int]:
    """End what killed nbops processes left on this machine: (processes killed, folders removed).
    Only this user's processes of this scope and folders in this temporary folder are looked at."""
    mine = scope()
    killed = kill_marked(lambda tokens: all(_in_scope(t, mine) for t in tokens)
                         and not all(_token_owner_alive(t) for t in tokens))
    removed = 0
    uid = os.getuid()
    for folder in _folders():
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != uid:
                continue
        except OSError:
            continue
        if not _folder_owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return killed, removed


def sweep_once() -> None:
    """`sweep`, the first time a process starts a kernel."""
    if not _swept.is_set():
        _swept.set()
        sweep()


class KernelProcs:
    """One kernel's marker and socket folder (its TMPDIR inside), from before its start to
    after its end."""

    def __init__(self, client_kwargs: dict[str, Any], kernel_name: str | None, start_kwargs: dict[str, Any]):
        """CLIENT_KWARGS: nbclient's (the socket configuration goes in); START_KWARGS: the kernel
        process's (the marked environment goes in)."""
        sweep_once()
        self.token = new_token()
        start_kwargs["env"] = marked_env(start_kwargs.get("env"), self.token)
        # named after its owner's pid only (its start time is in the owner file): a socket's
        # address has 104 bytes, and a deep temporary folder must still fit
        self.folder = kernel_sockets(client_kwargs, kernel_name, name=f"{os.getpid()}-")
        if self.folder is not None:
            Path(self.folder, OWNER_FILE).write_text(owner(), encoding="utf-8")
            Path(self.folder, SCOPE_FILE).write_text(scope(), encoding="utf-8")
            # the kernel's temporary files in its folder too: nbops kills each kernel once its
            # last cell has replied, so nothing it meant to remove at exit ever was (MLflow's
            # scratch folders, a server's upstream downloads, the notebook's atexit cleanups)
            Path(self.folder, TMP_DIR).mkdir()
            start_kwargs["env"]["TMPDIR"] = str(Path(self.folder, TMP_DIR))

    def end(self) -> None:
        """After the kernel is gone: kill what it started, remove its socket folder."""
        try:
            kill_marked(lambda tokens: self.token in tokens)
        finally:
            if self.folder is not None:  # the kernel's sockets are gone with it; a dead one's too
                shutil.rmtree(self.folder, ignore_errors=True)
