"""The MLflow store nbops works on: MLflow's process-wide URI, credentials kept out of messages,
and MLflow's exceptions turned into nbops errors in one place."""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

# mask_uri lives with the errors (every NbopsError masks its own message); re-exported here
from nbops.core.errors import (
    AlreadyExists,
    NbopsError,
    NotFound,
    TrackingError,
    map_mlflow_errors,
    mask_uri,  # noqa: F401 - re-exported: callers import it from here
    store_error_kind,
    store_errors,
)


def use_store(uri: str) -> None:
    """Point MLflow's process-wide tracking and registry URI at URI.

    Some MLflow calls ignore the client they are called on and resolve `models:/` URIs through
    the process-wide URI (loading a model; `create_model_version` checking its source), which
    otherwise defaults to ./mlflow.db of the working directory: wrong from a project's subfolder,
    and a stray database left there. Every nbops call that needs it sets it first, so a process
    that works on several stores (the tests) stays right too.
    """
    if uri:
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)


def params_digest(params: dict[str, str]) -> str:
    """A short digest of a run's parameters (compares versions' inputs at a glance)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def is_not_found(exc: BaseException) -> bool:
    """Whether an MLflow exception says the thing asked for does not exist (by its error_code:
    core/errors.py's map)."""
    return isinstance(exc, NotFound) or store_error_kind(exc) is NotFound


def is_already_exists(exc: BaseException) -> bool:
    return isinstance(exc, AlreadyExists) or store_error_kind(exc) is AlreadyExists


def mlflow_errors(what: str, error: type[NbopsError] = TrackingError,
                  hint: str | None = None) -> AbstractContextManager[None]:
    """core/errors.py's map_mlflow_errors, for the callers that name no store."""
    return map_mlflow_errors(what=what, error=error, hint=hint)


def is_store_error(exc: BaseException) -> bool:
    """Whether EXC is the store failing (MLflow refused, the disk or the network failed) rather
    than a bug: what nbops retries, or keeps a run in the spool for (core/errors.py's
    store_errors). Bugs keep their traceback."""
    return isinstance(exc, store_errors())


def all_experiment_ids(client: Any) -> list[str]:
    """Every active experiment's id, page by page (a team's store has more than one page)."""
    out: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        out.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return out


# MLflow's own client retries each request for minutes (7 retries, backoff factor 2, 120 s
# timeouts): against a server that is down, `nbops run` answered after 250 s. nbops bounds it,
# for itself and for the kernels it starts, unless the user set these variables.
RETRY_BUDGET = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
REACH_TIMEOUT_S = 3.0  # the reachability check, before any kernel starts (all of it)
# On top of them, `[tool.nbops] tracking_retry_s` (Settings; NBOPS_TRACKING_RETRY_S, 60 s) bounds how
# long nbops retries a run's record (`with_retries`) before it keeps the run in .nbops/spool.


def mlflow_settings(values: dict[str, str], *, override: bool = False) -> dict[str, str]:
    """Apply MLflow settings (MLFLOW_* variables) to this process; the one place nbops writes
    os.environ for MLflow. Why the environment: MLflow reads its retry, timeout, progress-bar and
    "View run" settings only from there (mlflow.environment_variables); its client takes no such
    argument. A variable the user set is kept unless OVERRIDE (doctor's short requests).
    Returns the values in force."""
    import os

    applied = {k: (v if override else os.environ.get(k) or v) for k, v in values.items()}
    os.environ.update(applied)
    return applied


QUIET_MLFLOW = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a bar on stderr per download
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # "View run ..." lines on stdout


def bounded_retries() -> dict[str, str]:
    """The retry budget (above), applied to this process; returned for the kernels' environment."""
    return mlflow_settings(RETRY_BUDGET)


def retry_env() -> dict[str, str]:
    """The retry budget as applied to this process (by `bounded_retries`), for a kernel."""
    import os

    return {k: os.environ.get(k) or v for k, v in RETRY_BUDGET.items()}


def kernel_retry_env(budget_s: float) -> dict[str, str]:
    """The retry budget for a kernel: MLflow's own retries of each request stretched to about
    BUDGET_S of backoff (`[tool.nbops] tracking_retry_s`), so a notebook's `log_metric` rides out
    the outages nbops itself rides out; variables the user set are kept."""
    import math
    import os

    env = retry_env()
    mine = RETRY_BUDGET["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]  # bounded_retries() set it, or nobody did
    if os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", mine) == mine:
        factor = float(env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) or 1.0
        # urllib3 sleeps FACTOR * 2**(n-1) before the n-th retry: n retries sleep FACTOR * (2**n - 1)
        retries = int(math.log2(budget_s / factor + 1)) if budget_s > 0 else 0
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(max(int(mine), retries))
    return env


def with_retries(call: Any, deadline: float, first_wait: float = 1.0) -> Any:
    """CALL(), retried with exponential backoff while it fails as the store (is_store_error)
    and time.monotonic() is before DEADLINE; the last error propagates."""
    import time

    wait = first_wait
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_store_error(exc) or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(wait * 2, 15.0)


def check_writable(uri: str) -> None:
    """A local sqlite store nbops will write to must be writable: one line naming the file,
    before any kernel starts (SQLAlchemy's own error is a 90-line traceback)."""
    import os
    from pathlib import Path

    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return
    db = Path(uri[len(prefix):].split("?", 1)[0])
    folder = db.parent
    if db.exists() and not os.access(db, os.W_OK):
        raise TrackingError(f"the MLflow store {db} is read-only: nbops cannot record runs in it",
                            hint="make it writable (chmod u+w), or set MLFLOW_TRACKING_URI to another store")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise TrackingError(f"the folder of the MLflow store {db} is read-only: SQLite cannot write there",
                            hint="make the folder writable, or set MLFLOW_TRACKING_URI to another store")


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """The check every command makes before it touches the store: within TIMEOUT seconds, a
    one-line TrackingError saying why URI cannot be used. A tracking server: down (connection
    refused), stalled (it accepts the connection and never answers), asking for a login (401:
    the hint names MLFLOW_TRACKING_USERNAME/PASSWORD and MLFLOW_TRACKING_TOKEN) or refusing this
    user (403). A database URI (postgresql, mysql, mssql): down, stalled, or refusing the login,
    and MLflow's own retries of it bounded. A local store (sqlite, files) is always reachable
    (`check_writable` and `check_sqlite_exists` are its checks)."""
    from nbops.core import reach

    if reach.is_server(uri):
        reach.check_server(uri, timeout)
    elif reach.is_database(uri):
        reach.check_database(uri, timeout)


def check_database(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """A database store's login, checked with one connection bounded by TIMEOUT (no-op for other
    URIs); part of `check_reachable`."""
    from nbops.core import reach

    if reach.is_database(uri):
        reach.check_database(uri, timeout)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local sqlite URI, None for any other store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0])


def check_sqlite_exists(uri: str) -> None:
    """For commands that read a store and must not create one (MLflow creates a missing sqlite
    file, and its folders, on first open): a missing file or folder is one line naming it."""
    db = sqlite_path(uri)
    if db is None or db.is_file() or str(db) == ":memory:":
        return
    if not db.parent.is_dir():
        raise TrackingError(f"the MLflow store {db}: its folder {db.parent} does not exist",
                            hint="check MLFLOW_TRACKING_URI or [tool.nbops] tracking_uri (a typo?)")
    raise TrackingError(f"no store yet: {db} does not exist",
                        hint="the first `nbops run` creates it; otherwise check MLFLOW_TRACKING_URI "
                             "or [tool.nbops] tracking_uri")


# What a kernel needs to reach the store and the artifact store, sent along to Ray workers (on
# another machine they do not have the driver's environment): MLflow's auth and client settings,
# S3/GCS/Azure credentials and endpoints. `[tool.nbops] kernel_env` adds names or patterns.
FORWARDED_ENV = ("MLFLOW_*", "AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
                 "AZURE_STORAGE_*", "AZURE_CLIENT_*", "AZURE_TENANT_ID", "REQUESTS_CA_BUNDLE",
                 "SSL_CERT_FILE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
# nbops sets these per run itself: the driver's own must never leak into a kernel
_PER_RUN = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


def forwarded_env(extra: tuple[str, ...] = (), environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of ENVIRON (this process's) that kernels need, by FORWARDED_ENV and EXTRA."""
    import fnmatch
    import os

    environ = dict(os.environ) if environ is None else environ
    patterns = (*FORWARDED_ENV, *extra)
    return {k: v for k, v in environ.items()
            if k not in _PER_RUN and any(fnmatch.fnmatchcase(k, p) for p in patterns)}
