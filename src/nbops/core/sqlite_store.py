"""The embedded MLflow store (sqlite) read directly, read-only: no `import mlflow` (~2.3 s).

Only reads, and only the tables MLflow's own SQL store reads for the same answers (registered
models, their tags and aliases, model versions and their tags, runs with their latest metrics,
params and tags, logged models; `nbops plan`'s finished runs by fingerprint), in MLflow's default
workspace, on a connection from `core/mlflow_db.py` (its one check: a schema revision and an
MLflow nbops was tested against, else `Unavailable`, said once). Anything unexpected (a locked
or damaged file) raises `Unavailable` too: the caller asks MLflow.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbops.core.mlflow_db import DEFAULT_WORKSPACE, Unavailable, connect
from nbops.core.registry_read import RawModel, RawRun, RawVersion

DELETED_VERSION = "Deleted_Internal"  # a version MLflow has deleted but not yet removed
# `nbops plan`: the newest FINISHED, active, non-review run with each fingerprint
_FINGERPRINT_SQL = """
SELECT t.value, r.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid
WHERE t.key = 'nbops.fingerprint' AND t.value IN ({marks})
  AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active'
  AND NOT EXISTS (SELECT 1 FROM tags v WHERE v.run_uuid = r.run_uuid
                  AND v.key = 'nbops.review' AND v.value = 'true')
ORDER BY r.start_time DESC
"""


class SqliteReader:
    def __init__(self, path: str):
        self.db = Path(path)

    @contextmanager
    def _con(self) -> Iterator[sqlite3.Connection | None]:
        if not self.db.exists():
            yield None  # no store yet: nothing registered (and do not create one)
            return
        try:
            with connect(self.db) as con:
                yield con
        except sqlite3.Error as exc:
            raise Unavailable(str(exc)) from None

    @staticmethod
    def _where(alias: str = "") -> str:
        """The workspace condition for a registry table (every supported revision has one)."""
        return f" AND {alias}workspace = '{DEFAULT_WORKSPACE}'"

    def model(self, name: str) -> RawModel | None:
        with self._con() as con:
            if con is None:
                return None
            if con.execute("SELECT 1 FROM registered_models WHERE name = ?" + self._where(),
                           (name,)).fetchone() is None:
                return None
            tags = dict(con.execute("SELECT key, value FROM registered_model_tags WHERE name = ?"
                                    + self._where(), (name,)))
            aliases = {a: str(v) for a, v in con.execute(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ?" + self._where(), (name,))}
            return RawModel(name, tags, aliases)

    def model_names(self) -> list[str]:
        with self._con() as con:
            if con is None:
                return []
            return [n for (n,) in con.execute("SELECT name FROM registered_models WHERE 1 = 1"
                                              + self._where() + " ORDER BY name LIMIT 1000")]

    def _versions(self, name: str, version: str | None) -> list[RawVersion]:
        with self._con() as con:
            if con is None:
                return []
            one = " AND version = ?" if version is not None else ""
            args = (name, int(version)) if version is not None else (name,)
            rows = con.execute(
                "SELECT version, run_id, source, creation_time FROM model_versions WHERE name = ?"
                f" AND current_stage != '{DELETED_VERSION}'{one}{self._where()}", args).fetchall()
            tags: dict[int, dict[str, str]] = {}
            for v, key, value in con.execute(
                    f"SELECT version, key, value FROM model_version_tags WHERE name = ?{one}{self._where()}",
                    args):
                tags.setdefault(int(v), {})[key] = value
            return [RawVersion(name, str(v), run_id or "", source or "", int(created or 0), tags.get(int(v), {}))
                    for v, run_id, source, created in rows]

    def versions(self, name: str) -> list[RawVersion]:
        return self._versions(name, None)

    def version(self, name: str, version: str) -> RawVersion | None:
        if not str(version).isdigit():
            return None
        found = self._versions(name, str(version))
        return found[0] if found else None

    def run(self, run_id: str) -> RawRun | None:
        with self._con() as con:
            if con is None:
                return None
            found = con.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
            if found is None:
                return None
            metrics = {k: float("nan") if is_nan else float(v) for k, v, is_nan in con.execute(
                "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,))}
            params = dict(con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
            tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
            return RawRun(run_id, metrics, params, tags, found[0] or "")

    def artifact_location(self, model_id: str) -> str | None:
        """Where MLflow keeps a logged model's artifacts (its `models:/<model id>` URI)."""
        with self._con() as con:
            if con is None:
                return None
            row = con.execute("SELECT artifact_location FROM logged_models WHERE model_id = ?"
                              " AND lifecycle_stage = 'active'", (model_id,)).fetchone()
            return row[0] if row else None

    def running_runs(self) -> list[tuple[str, dict[str, str]]]:
        """RUNNING runs of active experiments with nbops's owner tags (for the orphan check)."""
        with self._con() as con:
            if con is None:
                return []
            found: dict[str, dict[str, str]] = {}
            for run_id, key, value in con.execute(
                    "SELECT r.run_uuid, t.key, t.value FROM runs r"
                    " JOIN experiments e ON e.experiment_id = r.experiment_id"
                    " JOIN tags t ON t.run_uuid = r.run_uuid"
                    " WHERE r.status = 'RUNNING' AND r.lifecycle_stage = 'active'"
                    " AND e.lifecycle_stage = 'active'"
                    " AND t.key IN ('nbops.owner', 'nbops.heartbeat', 'nbops.notebook')"):
                found.setdefault(run_id, {})[key] = value
            return list(found.items())

    def finished_runs(self, fingerprints: list[str]) -> dict[str, str]:
        """fingerprint -> id of the newest FINISHED run with it (review runs do not count)."""
        found: dict[str, str] = {}
        with self._con() as con:
            if con is None:
                return found
            for i in range(0, len(fingerprints), 500):
                chunk = fingerprints[i : i + 500]
                for value, run_id in con.execute(_FINGERPRINT_SQL.format(marks=",".join("?" * len(chunk))), chunk):
                    found.setdefault(value, run_id)
        return found
