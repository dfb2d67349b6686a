"""The registry writes of `nbops models promote`, `approve` and `rollback` straight into the
embedded MLflow store (sqlite), without `import mlflow`: importing MLflow and opening its SQL
store took 9-20 s of a 10-20 s `promote` on a loaded 2-core machine (issue 23; 2.3 s unloaded).

`SqliteRegistry` is the embedded store's fast reader (`sqlite_store.SqliteReader`) plus the four
writes the registry makes, each the row MLflow's SQL store merges for the same call
(`set_registered_model_alias`, `set_registered_model_tag`, `set_model_version_tag`,
`delete_model_version_tag`; none of them touches another row, and only a server delivers
webhooks), and only in the plain case: a store that passes `core/mlflow_db.py`'s check (a schema
revision and an MLflow nbops was tested against; its fallback said once), no setting only
MLflow's client honours, a key and value MLflow takes as they are, a model and version that exist.
Anything else raises `Unavailable`, and the registry hands the call to
MLflow's client, which does it or refuses it in MLflow's words.
tests/integration/test_fast_registry.py compares the rows with MlflowClient's.
"""

from __future__ import annotations

import re
import sqlite3

from nbops.core.mlflow_db import DEFAULT_WORKSPACE, Unavailable, client_only, connect
from nbops.core.sqlite_store import DELETED_VERSION, SqliteReader
from nbops.core.sqlite_writer import WRITER_CLIENT_ONLY_ENV, _plain_key

_ALIAS = re.compile(r"^[A-Za-z_][\w\-]{0,254}$")  # MLflow's alias rule, less what it reserves
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
MAX_VALUE = 5000  # registered_model_tags.value is VARCHAR(5000): longer ones go to MLflow


class SqliteRegistry(SqliteReader):
    """Reads as `SqliteReader`; writes the registry's rows, or raises `Unavailable`."""

    def _write(self, sql: str, args: tuple, exists: tuple[str, tuple]) -> None:
        """SQL with ARGS in one write transaction (BEGIN IMMEDIATE, waiting up to 30 s for a
        kernel's write) on a checked store, when the row EXISTS asks for is there (else MLflow
        says it is not, in its words)."""
        if client_only(WRITER_CLIENT_ONLY_ENV):
            raise Unavailable("MLflow's client writes this store")
        try:
            with connect(self.db, write=True) as con:
                if con.execute(*exists).fetchone() is None:
                    raise Unavailable("not there")
                con.execute(sql, args)
        except sqlite3.Error as exc:
            raise Unavailable(str(exc)) from None

    @staticmethod
    def _plain(name: str, key: str, value: str | None = None) -> None:
        if not (isinstance(name, str) and name.strip() and "/" not in name and ":" not in name
                and _plain_key(key) and (value is None or (isinstance(value, str) and len(value) <= MAX_VALUE))):
            raise Unavailable("not the plain case")

    @staticmethod
    def _version(name: str, version: str) -> tuple[str, tuple]:
        """The query that finds VERSION of NAME (not deleted)."""
        if not str(version).isdigit():
            raise Unavailable("not a version number")
        return ("SELECT 1 FROM model_versions WHERE workspace = ? AND name = ? AND version = ?"
                f" AND current_stage != '{DELETED_VERSION}'", (DEFAULT_WORKSPACE, name, int(version)))

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if not isinstance(alias, str) or not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
            raise Unavailable("an alias MLflow checks itself")
        self._plain(name, alias)
        exists = self._version(name, version)
        self._write("INSERT OR REPLACE INTO registered_model_aliases (alias, version, name, workspace)"
                    " VALUES (?, ?, ?, ?)", (alias, int(version), name, DEFAULT_WORKSPACE), exists)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._plain(name, key, value)
        self._write("INSERT OR REPLACE INTO registered_model_tags (key, value, name, workspace)"
                    " VALUES (?, ?, ?, ?)", (key, value, name, DEFAULT_WORKSPACE),
                    ("SELECT 1 FROM registered_models WHERE workspace = ? AND name = ?",
                     (DEFAULT_WORKSPACE, name)))

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._plain(name, key, value)
        exists = self._version(name, version)
        self._write("INSERT OR REPLACE INTO model_version_tags (key, value, name, version, workspace)"
                    " VALUES (?, ?, ?, ?, ?)", (key, value, name, int(version), DEFAULT_WORKSPACE), exists)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self._plain(name, key)
        exists = self._version(name, version)
        self._write("DELETE FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ?"
                    " AND key = ?", (DEFAULT_WORKSPACE, name, int(version), key), exists)
