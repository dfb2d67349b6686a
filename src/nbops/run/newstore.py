"""A missing local MLflow store is created whole or not at all.

MLflow creates a sqlite store on first open by running its migrations in place (seconds): an nbops
killed meanwhile (kill -9, a lost terminal) left a half-migrated file that every later command
refused ("Online migration expected to match one row"). `create_sqlite` migrates the store in a
folder of its own beside it, then links it into place: a link never replaces, so of two nbops
creating one store at once the first one's is kept. The folder a killed creation left (named after
its owner and its host, as run/orphans.py names owners) is removed by the next creation on that
host: a folder shared between machines (an NFS home, a project on a shared disk) keeps another
machine's creation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from nbops.core.errors import map_mlflow_errors, mask_uri
from nbops.core.store import sqlite_path
from nbops.run.orphans import owner, owner_alive

CREATING_PREFIX = ".mlflow-creating-"  # + owner pid, start time and host: a store being created
_TEMPLATE_LOCK = threading.Lock()  # parallel runs in one nbops (`nbops run -j`) migrate it once


def create_sqlite(uri: str) -> None:
    """URI's sqlite file, created and migrated if missing (no-op for one that exists and for any
    other URI)."""
    db = sqlite_path(uri)
    if db is None or str(db) == ":memory:":
        return
    if db.exists():
        if db.parent.is_dir():  # killed between the link and the removal of its folder
            _remove_abandoned(db.parent)
        return
    db.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does
    _remove_abandoned(db.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_creation_prefix(), dir=db.parent))
    try:
        fresh = tmp / db.name
        if not _from_template(fresh):
            _migrate(f"sqlite:///{fresh}")
        try:
            os.link(fresh, db)
        except FileExistsError:  # another nbops created it meanwhile: theirs is as good
            pass
        except OSError:  # a file system without hard links: a rename, which would replace a
            if not db.exists():  # store made in the instant between the check and the move
                os.replace(fresh, db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _from_template(fresh: Path) -> bool:
    """FRESH made as a copy of this user's migrated empty store for the installed MLflow, with the
    Default experiment MLflow would have made here; False where that cannot be (MLflow then
    migrates FRESH itself). The copy takes milliseconds where MLflow's import and migrations take
    ~4.5 s of CPU: a project's first `nbops run` then imports no MLflow at all."""
    root = _default_artifact_root()
    template = None if root is None else _template()
    if root is None or template is None:
        return False
    from nbops.core.mlflow_db import Unavailable
    from nbops.core.sqlite_writer import own_default_experiment

    try:
        shutil.copyfile(template, fresh)
        own_default_experiment(fresh, root, int(time.time() * 1000))
    except (Unavailable, OSError, sqlite3.Error):  # a template nbops no longer reads; a full disk
        fresh.unlink(missing_ok=True)
        return False
    return True


def _default_artifact_root() -> str | None:
    """Where MLflow's client would put the Default experiment's artifacts for a store it creates
    in this process (its default root, ./mlruns, made absolute); None when a setting moves it
    (a server's artifact root, workspaces): MLflow then creates the store itself."""
    from nbops._mlflow_private import SERVER_ARTIFACT_ROOT_VAR

    if os.environ.get(SERVER_ARTIFACT_ROOT_VAR) or os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() \
            in ("1", "true"):
        return None
    return os.path.abspath("mlruns")


def _template() -> Path | None:
    """This user's migrated empty store for the installed MLflow version (in
    $XDG_CACHE_HOME/nbops, else ~/.cache/nbops; made once, atomically: in a folder of its own, then
    renamed into place); None where there is no cache folder to write or no MLflow version."""
    from nbops.core.mlflow_db import mlflow_version

    version = mlflow_version()
    if not version:
        return None
    with _TEMPLATE_LOCK:
        return _make_template(version)


def _make_template(version: str) -> Path | None:
    try:
        cache = template_cache()
        path = cache / f"mlflow-{version}.db"
        _remove_abandoned(cache)  # what a killed creation left, even if another made the template
        if path.is_file():
            return path
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_creation_prefix(), dir=cache))
    except (OSError, RuntimeError):  # no home (Path.home's RuntimeError), a read-only one
        return None
    try:
        _migrate(f"sqlite:///{tmp / path.name}")
        os.replace(tmp / path.name, path)
    except Exception:  # noqa: BLE001 - the template only saves time, so whatever stops it (a full
        # or over-quota home: OSError, or sqlite's "disk I/O error" through SQLAlchemy; a cache
        # path longer than sqlite opens) leaves the store to MLflow's migration in place, which
        # raises for a real problem. An interrupt is not an Exception and still ends the command.
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def template_cache() -> Path:
    """Where the templates are kept: $XDG_CACHE_HOME/nbops, else ~/.cache/nbops."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nbops"


def _host_mark() -> str:
    """This host, as a creation folder's name carries it (a host name may hold any character)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def _creation_prefix() -> str:
    _, pid, start = owner().split(":")
    return f"{CREATING_PREFIX}{pid}-{start or 0}-{_host_mark()}-"


def _migrate(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    for quiet in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables"
        logging.getLogger(quiet).setLevel(logging.WARNING)
    with map_mlflow_errors(what=f"cannot create the MLflow store {mask_uri(uri)}", store=uri):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # runs the migrations


def _remove_abandoned(folder: Path) -> None:
    """The creation folders in FOLDER whose nbops, on this host, is gone (another host's are
    left: its pid means nothing here). A name of three parts is an older nbops's, without its
    host: this host's."""
    here = _host_mark()
    for tmp in folder.glob(f"{CREATING_PREFIX}*"):
        parts = tmp.name[len(CREATING_PREFIX):].split("-")
        if len(parts) < 3 or (len(parts) > 3 and parts[2] != here):
            continue
        pid, start = parts[0], parts[1]
        if pid.isdigit() and owner_alive(f"{socket.gethostname()}:{pid}:{'' if start == '0' else start}") is False:
            shutil.rmtree(tmp, ignore_errors=True)
