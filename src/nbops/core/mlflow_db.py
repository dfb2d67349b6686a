"""The one door to MLflow's private storage: every connection nbops opens to the embedded store
(sqlite) is opened here, behind one check, which every fast path passes (issue 24).

MLflow's tables are not an API. nbops reads and writes them directly only because `import mlflow`
and opening its SQL store cost ~2.3 s (10-20 s on a loaded 2-core machine) of commands that take
0.2 s without it. The fast paths (`sqlite_store.py`: the registry's and the runs' reads, and
`nbops plan`'s cached fingerprints; `sqlite_registry.py`: the alias and tag writes of
`promote`/`approve`/`rollback`; `sqlite_writer.py`: `nbops run`'s own records;
`lifecycle/fastload.py` through the reader) get their connections from `connect`, and only when
- the store's schema revision (its `alembic_version`) is one nbops was tested against
  (`SUPPORTED_REVISIONS`: tests/integration/test_sqlite_writer.py, test_sqlite_registry.py and
  test_fast_registry.py compare every row and answer with MlflowClient's), and
- the installed MLflow is a version nbops was tested against (`SUPPORTED_MLFLOW`, read from its
  `version.py` without importing it): a newer MLflow may write other rows, or refuse a store
  whose schema it wants migrated.
When the check fails, `Unavailable` is raised and the caller asks MLflow's documented client
(MlflowClient), which answers, or refuses in MLflow's words. The fallback is said once per
process, by whichever fast path meets it first: one line on stderr with NBOPS_VERBOSE set
(`fell_back`), and a check line of `nbops doctor` (`verdict`); never per call, never silent.
`NBOPS_NO_FAST_REGISTRY` (and the settings only
MLflow's client honours, `client_only`) turn every fast path off, silently: that is a choice.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

# alembic revisions of MLflow's schema whose rows nbops reads and writes (MLflow 3.17's head)
SUPPORTED_REVISIONS = frozenset({"dc11669786a5"})
# MLflow releases (major.minor) nbops's fast paths were tested against
SUPPORTED_MLFLOW = frozenset({"3.17"})
DEFAULT_WORKSPACE = "default"  # MLflow's, where every row lives unless workspaces are enabled
WRITE_TIMEOUT_S = 30  # a write waits this long for a kernel's write (BEGIN IMMEDIATE)
READ_TIMEOUT_S = 10

# settings MLflow's client honours that no fast path does: with any of them, ask MLflow
_CLIENT_ONLY_ENV = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
                    "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH", "MLFLOW_WORKSPACE",
                    "MLFLOW_ENABLE_WORKSPACES")


class Unavailable(Exception):
    """A fast path cannot answer this (the caller asks MLflow's client instead)."""


def client_only(extra: tuple[str, ...] = ()) -> bool:
    """Whether a setting MLflow's client honours (or NBOPS_NO_FAST_REGISTRY, the off switch of
    every path around it) sends this process's store calls to MLflow's client."""
    return any(os.environ.get(k) for k in ("NBOPS_NO_FAST_REGISTRY", *_CLIENT_ONLY_ENV, *extra))


@lru_cache(maxsize=1)
def mlflow_version() -> str | None:
    """The installed MLflow's version, read from `mlflow/version.py` (`import mlflow` costs
    seconds; importlib.metadata ~40 ms), or None where there is none."""
    from importlib.util import find_spec

    try:
        spec = find_spec("mlflow")
        if spec is None or spec.origin is None:
            return None
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except (ImportError, OSError, ValueError):
        return None
    found = re.search(r'^VERSION\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    return found.group(1) if found else None


def mlflow_supported() -> str:
    """'' when the installed MLflow is one nbops was tested against, else why not."""
    version = mlflow_version()
    if version is not None and ".".join(version.split(".")[:2]) in SUPPORTED_MLFLOW:
        return ""
    return (f"MLflow {version or '(not found)'} is not a version nbops was tested against "
            f"({', '.join(sorted(SUPPORTED_MLFLOW)) or 'none'})")


def _revision(con: sqlite3.Connection) -> str | None:
    try:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None  # no alembic_version table: not a store MLflow made
        raise  # locked, unreadable: the caller's error, not a schema nbops does not know
    except sqlite3.Error:
        return None  # not a database MLflow made
    return str(row[0]) if row else None


def check(con: sqlite3.Connection) -> str:
    """THE check every fast path passes: '' when nbops may read and write the store behind CON
    itself, else why not (MLflow's client then does it)."""
    revision = _revision(con)
    if revision not in SUPPORTED_REVISIONS:
        return (f"schema revision {revision or '(none)'} is not one nbops was tested against "
                f"({', '.join(sorted(SUPPORTED_REVISIONS)) or 'none'})")
    return mlflow_supported()


_said: list[str] = []  # the fallback this process has said (at most one)
_said_lock = threading.Lock()


def verbose() -> bool:
    return os.environ.get("NBOPS_VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


def fell_back(what: str | Path, why: str) -> Unavailable:
    """The fallback of WHAT (a store, or "loading models") to MLflow's client, said once per
    process, whichever fast path meets it first (a line on stderr when verbose); the exception
    to raise."""
    with _said_lock:
        first = not _said
        if first:
            _said.append(f"{what}: {why}")
    if first and verbose():
        print(f"nbops: {what}: MLflow's client reads and writes it (slower): {why}", file=sys.stderr)
    return Unavailable(why)


def verdict(db: Path) -> tuple[bool, str]:
    """For `nbops doctor`: (whether the fast paths read and write DB, what they do and why)."""
    if client_only():
        return False, "MLflow's client reads and writes the store (NBOPS_NO_FAST_REGISTRY or a client-only setting)"
    try:
        con = _open(db, write=False)
    except sqlite3.Error as exc:
        return False, f"MLflow's client reads and writes the store: {exc}"
    try:
        why, revision = check(con), _revision(con)
    except sqlite3.Error as exc:  # locked past the timeout, unreadable
        return False, f"MLflow's client reads and writes the store: {exc}"
    finally:
        con.close()
    if why:
        return False, f"MLflow's client reads and writes the store (slower): {why}"
    return True, f"nbops reads and writes the store directly (schema {revision}, MLflow {mlflow_version()}: tested)"


def _open(db: Path, write: bool) -> sqlite3.Connection:
    if write:
        return sqlite3.connect(db, timeout=WRITE_TIMEOUT_S, isolation_level=None)
    # read-only: never creates the file, never takes the write lock
    return sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=READ_TIMEOUT_S,
                           isolation_level=None)


@contextmanager
def connect(db: Path, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A checked connection to DB in one transaction (BEGIN IMMEDIATE for WRITE, else BEGIN: one
    snapshot), committed at the end, rolled back on any exception. `Unavailable` when the check
    fails or the file cannot be opened; sqlite errors met later (a locked or full database) are
    the caller's. Never creates a store (MLflow creates it, with its schema)."""
    if not db.is_file():
        raise Unavailable("no store yet")
    try:
        con = _open(db, write)
    except sqlite3.Error as exc:
        raise Unavailable(str(exc)) from None
    try:
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            why = check(con)
        except sqlite3.OperationalError:
            raise
        except sqlite3.Error as exc:
            raise Unavailable(str(exc)) from None
        if why:
            raise fell_back(db, why)
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
