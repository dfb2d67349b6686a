"""Runs whose nbops process died without a word (kill -9, a lost machine) are found and ended.

Every run nbops starts carries `nbops.owner` (host, pid and the process's start time, so a reused
pid is not mistaken for the owner) and a `nbops.heartbeat` (epoch seconds) that the owning process
refreshes while the notebook runs. A RUNNING run is an orphan when its owner on this host is gone,
or when its heartbeat is older than `STALE_S` (owners on other hosts, which cannot be asked). The
next nbops command that opens the store ends orphans as KILLED (`nbops runs gc` does it on demand).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEARTBEAT_S = 60.0  # how often a running nbops refreshes its runs' heartbeat
STALE_S = 15 * 60.0  # a heartbeat this old means the owner (on another host) is gone
OWNER_TAG, HEARTBEAT_TAG, REAPED_TAG = "nbops.owner", "nbops.heartbeat", "nbops.reaped"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, counted after the command name


def owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process named by an `nbops.owner` tag still runs; None: another host's."""
    host, _, rest = tag.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    if started and Path("/proc").is_dir():
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@dataclass(frozen=True)
class Orphan:
    run_id: str
    notebook: str
    why: str


def find_orphans(runs: list[tuple[str, dict[str, str]]], now: float | None = None) -> list[Orphan]:
    """The orphans among RUNS (RUNNING runs with their tags)."""
    now = time.time() if now is None else now
    found = []
    for run_id, tags in runs:
        tag = tags.get(OWNER_TAG)
        if not tag:
            continue  # not started by an nbops that records its owner
        alive = owner_alive(tag)
        beat = float(tags.get(HEARTBEAT_TAG, "0") or 0)
        if alive is False:
            why = f"its nbops process ({tag}) is gone"
        elif alive is None and now - beat > STALE_S:
            why = f"no heartbeat from {tag.split(':')[0]} for {int(now - beat)} s"
        else:
            continue
        found.append(Orphan(run_id, tags.get("nbops.notebook", ""), why))
    return found


def open_client(uri: str) -> tuple[Any, list[Orphan]]:
    """An MlflowClient on URI for an nbops command: the server's reachability checked (one line
    within seconds), MLflow's retries bounded, and the orphaned runs ended (they are returned)."""
    import logging

    from nbops.core.errors import TrackingError, first_line, map_mlflow_errors
    from nbops.core.run_store import ClientStore
    from nbops.core.store import bounded_retries, check_reachable, mask_uri

    check_reachable(uri)  # before `import mlflow` (seconds): a server away is one line at once
    from mlflow.tracking import MlflowClient

    # after importing mlflow, which sets its loggers up: INFO lines (database migrations, "View
    # run" links) are not ours to print
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    bounded_retries()
    from nbops.core.errors import NbopsError
    from nbops.run.newstore import create_sqlite

    try:
        create_sqlite(uri)  # a new local store whole or not at all, whenever this nbops is killed
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - not mapped: opening a store runs a database driver's import, SQLAlchemy and alembic's migrations before MLflow's own errors apply; each means "cannot open"
        raise TrackingError(f"cannot open the MLflow store {mask_uri(uri)}: {mask_uri(first_line(exc))}") from None
    with map_mlflow_errors(what=f"cannot read the MLflow store {mask_uri(uri)}", store=uri):
        return client, reap(ClientStore(client))


def reap(store: Any) -> list[Orphan]:
    """End every orphan in STORE (core/run_store.py's) as KILLED, saying why in `nbops.reaped`."""
    from nbops.core.errors import store_errors

    orphans = find_orphans(store.running_runs())
    ended = []
    for o in orphans:
        try:
            store.set_tags(o.run_id, {REAPED_TAG: o.why})
            store.set_terminated(o.run_id, "KILLED")
        except store_errors():
            # another nbops (a concurrent sync, say) ended or deleted it meanwhile: a deleted run
            # refuses tags. Only a run that is still RUNNING makes the failure ours to say.
            if o.run_id in {run_id for run_id, _ in store.running_runs()}:
                raise
            continue
        ended.append(o)
    return ended


class Heartbeat:
    """Refreshes the heartbeat of the runs this process has running, from one daemon thread."""

    def __init__(self, store: Any, interval: float = HEARTBEAT_S):
        self.store, self.interval = store, interval  # core/run_store.py's
        self.active: set[str] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, run_id: str) -> None:
        with self.lock:
            self.active.add(run_id)
            if self.thread is None:
                self.thread = threading.Thread(target=self._beat, name="nbops-heartbeat", daemon=True)
                self.thread.start()

    def remove(self, run_id: str) -> None:
        with self.lock:
            self.active.discard(run_id)

    def _beat(self) -> None:
        from nbops.core.errors import store_errors

        while True:
            time.sleep(self.interval)
            with self.lock:
                runs = list(self.active)
            for run_id in runs:
                try:
                    self.store.set_tags(run_id, {HEARTBEAT_TAG: str(int(time.time()))})
                except store_errors():  # the store is away: the next beat retries
                    pass
