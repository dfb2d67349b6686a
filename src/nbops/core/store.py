"""The MLflow store nbops works on: MLflow's process-wide URI, credentials kept out of messages,
and MLflow's exceptions turned into nbops errors in one place."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nbops.core.errors import NbopsError, TrackingError, first_line

# user:password@ (or a token) inside a URI: never printed or stored
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/@\s:]+(:[^/@\s]*)?@")


def mask_uri(text: str) -> str:
    """TEXT with the credentials of every URI in it replaced by `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)


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
    """Whether an MLflow exception says the thing asked for does not exist."""
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def is_already_exists(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS") or "already exists" in str(exc).lower()


@contextmanager
def mlflow_errors(what: str, error: type[NbopsError] = TrackingError,
                  hint: str | None = None) -> Iterator[None]:
    """Turn MLflow's exceptions (and the connection errors of a remote store) raised inside the
    block into ERROR("WHAT: <first line>"), with credentials masked; anything else propagates."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise error(f"{what}: {mask_uri(first_line(exc))}", hint=hint) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise error(f"{what}: {mask_uri(first_line(exc))}",
                    hint=hint or "is the tracking server up? (nbops config shows the store)") from exc


def is_store_error(exc: BaseException) -> bool:
    """Whether EXC is the store failing (MLflow refused, the disk or the network failed) rather
    than a bug: store errors become TrackingErrors, bugs keep their traceback."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException | OSError | TimeoutError)


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
REACH_TIMEOUT_S = 5.0  # the reachability check, before any kernel starts


def bounded_retries() -> dict[str, str]:
    """The retry budget (above), applied to this process; returned for the kernels' environment."""
    import os

    budget = {k: os.environ.get(k) or v for k, v in RETRY_BUDGET.items()}
    os.environ.update(budget)
    return budget


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """A tracking server that does not answer its /health within TIMEOUT is a one-line
    TrackingError at once (a local store is always reachable)."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    if not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    health = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as reply:  # noqa: S310 - http(s) only
            reply.read(64)
    except urllib.error.HTTPError:
        return  # it answered (a proxy or auth in front of /health): reachable
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"the tracking server {mask_uri(uri)} is not reachable: {reason}",
                            hint="is it running? check MLFLOW_TRACKING_URI (nbops config shows the store)") from None
