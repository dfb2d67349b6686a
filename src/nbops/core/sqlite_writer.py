"""`nbops run`'s own records written straight into the embedded MLflow store (sqlite), without
`import mlflow`: importing MLflow and opening its SQL store cost ~2 s of CPU per `nbops run`, which
on two cores busy with kernels was most of the tracking overhead (issue 15).

It writes only the rows MLflow's SQL store writes for the same calls (an experiment; a run, its
tags, params, metrics and latest metrics; a run's end) and copies artifacts into a local artifact
folder as MLflow's local repository does, and only
- on a store that passes `core/mlflow_db.py`'s check, on every connection (a schema revision and
  an MLflow nbops was tested against: tests/integration/test_sqlite_writer.py compares every
  write with MlflowClient's on the installed MLflow, and fails when MLflow's schema moves on, so
  that the list is re-checked, not guessed); else MLflow's client writes, said once;
- without a setting that changes where MLflow writes (workspaces, an active model: see
  `registry_read.client_only`; NBOPS_NO_FAST_REGISTRY turns every fast path off);
- in the plain case. A key MLflow might refuse, a value it would truncate, a NaN or infinite
  metric, a param already set to another value, a run or experiment that is not active, the run
  name tag, datasets, a YAML artifact, an artifact store that is not a local folder: each goes to
  MLflow's own client (`fallback`), which takes it or refuses it in MLflow's words.
Each call is one transaction (BEGIN IMMEDIATE, waiting up to 30 s for a kernel's write).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nbops.core.files import local_path
from nbops.core.mlflow_db import DEFAULT_WORKSPACE, Unavailable, client_only, connect

_KEY = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}$")  # a subset of what MLflow accepts
MAX_PARAM_VALUE, MAX_TAG_VALUE, MAX_EXPERIMENT_NAME = 6000, 8000, 500  # MLflow's limits
MAX_LOCATION = 2048  # MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH's default
RUN_NAME_TAG = "mlflow.runName"
# MLflow's local artifact repository stages files under this prefix and never lists them
UPLOADING_PREFIX = ".artifact.uploading."
# settings that make MLflow write more than these rows (log_batch also links an active model)
WRITER_CLIENT_ONLY_ENV = ("MLFLOW_ACTIVE_MODEL_ID", "_MLFLOW_ACTIVE_MODEL_ID", "MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH")


class _Delegate(Exception):
    """Not the plain case: MLflow's client does this call."""


def _plain_key(key: Any) -> bool:
    return (isinstance(key, str) and bool(_KEY.match(key)) and posixpath.normpath(key) == key
            and not key.startswith(("/", "..")) and key != ".")


def _plain_values(items: dict[str, Any], limit: int) -> bool:
    return all(_plain_key(k) and isinstance(v, str) and len(v) <= limit for k, v in items.items())


def _plain_location(uri: str | None) -> bool:
    if not uri:
        return False
    parsed = urlparse(uri)
    return not (parsed.query or parsed.fragment or parsed.params)


class SqliteWriter:
    def __init__(self, uri: str, fallback: Callable[[], Any]):
        self.db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        self._fallback, self._client, self._lock = fallback, None, threading.Lock()
        if client_only(WRITER_CLIENT_ONLY_ENV):
            raise Unavailable("a setting only MLflow's client honours")
        if "?" in uri or not self.db.is_file():
            raise Unavailable("no store yet")  # MLflow creates it (and its schema)
        try:
            with self._con(write=False):
                pass  # the check (and a fallback said once), before any run is made
        except sqlite3.Error as exc:
            raise Unavailable(str(exc)) from None

    @property
    def client(self) -> Any:
        """The ClientStore the writer hands other cases to (MLflow imported on first need)."""
        with self._lock:
            if self._client is None:
                self._client = self._fallback()
            return self._client

    def _con(self, write: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """A checked connection in one transaction: a writing one (BEGIN IMMEDIATE), or one that
        reads (`Unavailable` when the store fails the check: MLflow's client then writes)."""
        return connect(self.db, write=write)

    def _write(self, name: str, args: tuple, body: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            with self._con() as con:
                return body(con)
        except (_Delegate, Unavailable):
            return getattr(self.client, name)(*args)

    @staticmethod
    def _active_run(con: sqlite3.Connection, run_id: str) -> None:
        row = con.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None or row[0] != "active":
            raise _Delegate  # MLflow says "not found" or "must be in the 'active' state"

    # -- experiments and runs -----------------------------------------------------------------
    def experiment_id(self, name: str, location: str | None) -> str:
        def find(con: sqlite3.Connection) -> str | None:
            row = con.execute("SELECT experiment_id FROM experiments WHERE name = ? AND workspace = ?",
                              (name, DEFAULT_WORKSPACE)).fetchone()
            return None if row is None else str(row[0])

        try:
            with self._con(write=False) as con:  # the usual case: it exists (no write lock taken)
                found = find(con)
        except Unavailable:
            return self.client.experiment_id(name, location)
        if found is not None:
            return found

        def body(con: sqlite3.Connection) -> str:
            found = find(con)  # created meanwhile?
            if found is not None:
                return found
            if (not location or not name.strip() or len(name) > MAX_EXPERIMENT_NAME or len(location) > MAX_LOCATION
                    or local_path(location) is None):
                raise _Delegate
            now = int(time.time() * 1000)
            cur = con.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time,"
                              " last_update_time, workspace) VALUES (?, ?, 'active', ?, ?, ?)",
                              (name, location, now, now, DEFAULT_WORKSPACE))
            return str(cur.lastrowid)

        return self._write("experiment_id", (name, location), body)

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str, start_ms: int) -> str:
        def body(con: sqlite3.Connection) -> str:
            row = con.execute("SELECT lifecycle_stage, artifact_location FROM experiments WHERE experiment_id = ?",
                              (int(experiment_id),)).fetchone()
            if (row is None or row[0] != "active" or not _plain_location(row[1]) or RUN_NAME_TAG in tags
                    or not run_name or len(run_name) > 250 or not _plain_values(tags, MAX_TAG_VALUE)):
                raise _Delegate  # (a location with a query: MLflow puts the run's folder before it)
            run_id = uuid.uuid4().hex
            artifact_uri = f"{row[1].rstrip('/')}/{run_id}/artifacts"  # MLflow's append_to_uri_path
            con.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
                " status, start_time, end_time, deleted_time, source_version, lifecycle_stage,"
                " artifact_uri, experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL,"
                " NULL, '', 'active', ?, ?)",
                (run_id, run_name, tags.get("mlflow.user", "unknown"), start_ms, artifact_uri, int(experiment_id)))
            con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                            [(k, v, run_id) for k, v in {**tags, RUN_NAME_TAG: run_name}.items()])
            return run_id

        return self._write("create_run", (experiment_id, tags, run_name, start_ms), body)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        def body(con: sqlite3.Connection) -> None:
            self._active_run(con, run_id)
            if not _plain_values(params, MAX_PARAM_VALUE):
                raise _Delegate
            old = dict(con.execute(f"SELECT key, value FROM params WHERE run_uuid = ? AND key IN "
                                   f"({', '.join('?' * len(params))})", (run_id, *params)))
            if any(old[k] != v for k, v in params.items() if k in old):
                raise _Delegate  # MLflow refuses to change a param, in its words
            con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                            [(k, v, run_id) for k, v in params.items() if k not in old])

        if params:
            self._write("log_params", (run_id, params), body)

    def log_metrics(self, run_id: str, metrics: dict[str, float], timestamp_ms: int, step: int = 0) -> None:
        def body(con: sqlite3.Connection) -> None:
            self._active_run(con, run_id)
            if not all(_plain_key(k) and type(v) in (int, float) and math.isfinite(v) for k, v in metrics.items()):
                raise _Delegate  # NaN and infinities are stored MLflow's way by MLflow
            con.executemany("INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                            " VALUES (?, ?, ?, ?, ?, 0)",
                            [(k, float(v), timestamp_ms, run_id, step) for k, v in metrics.items()])
            latest = {k: (s, t, v) for k, s, t, v in con.execute(
                f"SELECT key, step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key IN "
                f"({', '.join('?' * len(metrics))})", (run_id, *metrics))}
            for key, value in metrics.items():  # MLflow's rule: the later (step, timestamp, value) wins
                new = (step, timestamp_ms, float(value))
                if key not in latest or new > latest[key]:
                    con.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan,"
                                " run_uuid) VALUES (?, ?, ?, ?, 0, ?)", (key, float(value), timestamp_ms, step, run_id))

        if metrics:
            self._write("log_metrics", (run_id, metrics, timestamp_ms, step), body)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        def body(con: sqlite3.Connection) -> None:
            self._active_run(con, run_id)
            if RUN_NAME_TAG in tags or not _plain_values(tags, MAX_TAG_VALUE):
                raise _Delegate  # the run name tag is also the run's name; long values are truncated
            con.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                            [(k, v, run_id) for k, v in tags.items()])

        if tags:
            self._write("set_tags", (run_id, tags), body)

    def set_terminated(self, run_id: str, status: str) -> None:
        def body(con: sqlite3.Connection) -> None:
            self._active_run(con, run_id)
            if status not in ("FINISHED", "FAILED", "KILLED"):
                raise _Delegate
            con.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                        (status, int(time.time() * 1000), run_id))

        self._write("set_terminated", (run_id, status), body)

    def running_runs(self) -> list[tuple[str, dict[str, str]]]:
        from nbops.core.sqlite_store import SqliteReader

        return SqliteReader(str(self.db)).running_runs()

    def log_datasets(self, run_id: str, datasets: list[dict[str, str]], context: str) -> None:
        self.client.log_datasets(run_id, datasets, context)

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    # -- artifacts ----------------------------------------------------------------------------
    def _artifact_dir(self, run_id: str, artifact_path: str) -> Path | None:
        try:
            with self._con(write=False) as con:
                row = con.execute("SELECT artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?",
                                  (run_id,)).fetchone()
        except Unavailable:
            return None  # MLflow's client logs it
        folder = local_path(row[0]) if row and row[1] == "active" else None
        if folder is None or not all(_plain_key(p) for p in artifact_path.split("/") if p):
            return None
        return folder / artifact_path

    def log_artifact(self, run_id: str, path: str, artifact_path: str) -> None:
        """PATH copied into the run's artifact folder as MLflow's local repository copies it (a
        temporary file renamed into place, the file's times and mode kept)."""
        folder = self._artifact_dir(run_id, artifact_path)
        if folder is None:
            return self.client.log_artifact(run_id, path, artifact_path)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=UPLOADING_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out)
            shutil.copystat(path, tmp)
            os.replace(tmp, folder / Path(path).name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return None

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> None:
        """DATA as JSON (MLflow's log_dict: indent 2, str() for the rest); YAML goes to MLflow."""
        parent, _, name = artifact_file.rpartition("/")
        folder = self._artifact_dir(run_id, parent)
        if folder is None or not name.endswith(".json") or not _plain_key(name):
            return self.client.log_dict(run_id, data, artifact_file)
        with tempfile.TemporaryDirectory(prefix="nbops-dict-") as tmp:
            file = Path(tmp) / name
            with open(file, "w") as f:
                json.dump(data, f, indent=2, default=str)
            self.log_artifact(run_id, str(file), parent)
        return None


def own_default_experiment(db: Path, artifact_root: str, now_ms: int) -> None:
    """DB, a copy of an empty store MLflow migrated elsewhere (run/newstore.py's template), given
    the Default experiment MLflow would have made here: its artifact location under ARTIFACT_ROOT
    (`<root>/0`, as MLflow's `append_to_uri_path`) and its times NOW_MS. `Unavailable` when the
    copy fails the check, or is not an empty store with MLflow's Default experiment alone."""
    with connect(db, write=True) as con:
        rows = con.execute("SELECT experiment_id, name FROM experiments").fetchall()
        if rows != [(0, "Default")] or con.execute("SELECT count(*) FROM runs").fetchone()[0]:
            raise Unavailable("not an empty store")
        con.execute("UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                    "WHERE experiment_id = 0", (posixpath.join(artifact_root, "0"), now_ms, now_ms))
