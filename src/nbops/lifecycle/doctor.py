"""`nbops doctor`: can this project's store do what nbops needs? One check a line, each with a
hint when it fails, and how long it took; `--format json` gives the same as one object.

The checks, in order (a failed one stops those that need it): which store and where that came
from (a sqlite file or folder that is not there fails here: doctor never creates a store); the
tracking server answers, or the database takes the login (each within seconds: down, stalled and
refused logins are told apart); for the embedded store, whether nbops reads and writes it
directly or through MLflow's client (the fast paths' one check, core/mlflow_db.py: a fallback is
said here, and is not a failure); a run can be created, given a param and a metric, and ended; the
artifact store takes an artifact (for a server with proxied artifacts through the server, which
writes to its own store, S3 or another; an `s3://` store straight, with short timeouts, with the
credentials and endpoint of this environment, which the kernels need too); a model version can
be registered. Every request has a short timeout and no retries: a check that waits says so in
seconds, never minutes. What the checks make is removed again: the probe run is deleted and the
probe model too (a deleted run stays in MLflow's trash until `mlflow gc`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbops import __version__
from nbops.core.config import Settings
from nbops.core.errors import NbopsError, first_line
from nbops.core.store import mask_uri

PROBE_EXPERIMENT = "nbops-doctor"
PROBE_MODEL = "nbops-doctor-probe"
REQUEST_TIMEOUT_S = 6  # each of MLflow's requests while doctor probes (no retries; a cold server is slow)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    seconds: float = 0.0


def as_json(checks: list[Check]) -> str:
    """One JSON object for monitoring: ok, and each check with its name, ok, detail, hint, seconds."""
    return json.dumps({"ok": all(c.ok for c in checks), "nbops": __version__,
                       "checks": [asdict(c) for c in checks]})


def _hint_for(exc: BaseException, what: str) -> str:
    text = str(exc)
    if "No module named" in text:
        return "the store's database driver is missing: pip install 'nbops[team]'"
    if "401" in text or "403" in text or "PERMISSION" in text or "Unauthorized" in text:
        return ("the server refused these credentials: set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")
    if "NoCredentials" in text or "credentials" in text.lower() or "AccessDenied" in text:
        return ("the artifact store needs credentials here and in the kernels (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, MLFLOW_S3_ENDPOINT_URL), or serve artifacts through the "
                "server (mlflow server --serve-artifacts)")
    return f"nbops needs to {what}: check the server's log"


def _server_version(uri: str) -> str:
    if not uri.startswith(("http://", "https://")):
        return ""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/version", timeout=2) as reply:  # noqa: S310 - http(s) only
            return reply.read(64).decode(errors="replace").strip()
    except (OSError, ValueError):
        return ""


def _store_kind(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return "tracking server"
    if uri.startswith("sqlite:"):
        return "embedded store (sqlite file)"
    if "://" in uri and not uri.startswith("file:"):
        return "database store (no server: every client needs the driver and the database's credentials)"
    return "file store"


def _timed(name: str, check: Callable[[], str]) -> Check:
    """CHECK() run as the check NAME: its detail, or the NbopsError it raised as a failure."""
    started = time.monotonic()
    try:
        detail = check()
    except NbopsError as exc:
        return Check(name, False, exc.message, exc.hint or "", round(time.monotonic() - started, 3))
    return Check(name, True, detail, "", round(time.monotonic() - started, 3))


def _local_store(uri: str) -> str:
    """A local store must be there already: MLflow would create the file (and its folders)."""
    from nbops.core.errors import TrackingError
    from nbops.core.store import check_sqlite_exists, sqlite_path

    db = sqlite_path(uri)
    if db is not None:
        check_sqlite_exists(uri)
        return f"sqlite file {db} ({db.stat().st_size / 1e6:.1f} MB)"
    folder = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if not folder.is_dir():
        raise TrackingError(f"no store yet: the folder {folder} does not exist",
                            hint="the first `nbops run` creates it; otherwise check MLFLOW_TRACKING_URI")
    return f"folder {folder}"


def _fast_path(uri: str) -> Check:
    """Whether nbops reads and writes the embedded store itself (core/mlflow_db.py's one check) or
    through MLflow's client: a line either way, not a failure (MLflow's client is only slower)."""
    from nbops.core.mlflow_db import verdict
    from nbops.core.store import sqlite_path

    started = time.monotonic()
    db = sqlite_path(uri)
    direct, detail = verdict(db) if db is not None else (False, "not a sqlite store")
    hint = "" if direct else ("every command still works, through MLflow's client; an nbops tested with this "
                              "MLflow and schema revision reads and writes the store directly again")
    return Check("fast path", True, detail, hint, round(time.monotonic() - started, 3))


def _database(uri: str) -> str:
    """The database takes the login, and holds an MLflow store (doctor never creates its tables)."""
    import sqlalchemy

    from nbops.core.errors import TrackingError
    from nbops.core.store import REACH_TIMEOUT_S, check_database

    check_database(uri, REACH_TIMEOUT_S)
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if "experiments" not in tables:
        raise TrackingError(f"no store yet: the database {mask_uri(uri)} has no MLflow tables",
                            hint="`mlflow server` on it, or the first `nbops run`, creates them")
    return f"{mask_uri(uri)}: login accepted, MLflow tables present"


def _server(uri: str) -> str:
    from nbops.core.store import REACH_TIMEOUT_S, check_reachable

    started = time.monotonic()
    check_reachable(uri, REACH_TIMEOUT_S)
    took = time.monotonic() - started
    server = _server_version(uri)
    return f"answered in {took:.1f} s" + (f" (server mlflow {server})" if server else "")


def _short_requests() -> None:
    """MLflow's HTTP requests in this process: a few seconds each, no retries (doctor says what
    waits; MLflow's defaults would retry a stalled request for minutes)."""
    from nbops.core.store import QUIET_MLFLOW, mlflow_settings

    mlflow_settings({"MLFLOW_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                    override=True)
    # MLflow prints "View run ..." links on stdout when a run ends: not in doctor's lines or JSON
    mlflow_settings({"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}, override=True)
    mlflow_settings(QUIET_MLFLOW)  # the progress bar: off unless the user set it


def diagnose(settings: Settings) -> list[Check]:
    """Every check, in order; stops after the first failure that the others depend on."""
    from nbops.core.reach import is_database, is_server

    uri = settings.resolved_tracking_uri
    source = settings.sources.get("tracking_uri", "default")
    kind = _store_kind(uri)
    checks = [Check("store", True, f"{mask_uri(uri)} ({kind}; from {source})")]
    if is_server(uri):
        checks.append(_timed("tracking server", lambda: _server(uri)))
    elif is_database(uri):
        checks.append(_timed("database", lambda: _database(uri)))
    else:
        checks.append(_timed("database" if uri.startswith("sqlite:") else "folder", lambda: _local_store(uri)))
    if not checks[-1].ok:
        return checks
    if uri.startswith("sqlite:"):
        checks.append(_fast_path(uri))
    _short_requests()
    started = time.monotonic()
    try:
        import mlflow

        from nbops.run.orphans import open_client

        client, _ = open_client(uri)
    except Exception as exc:  # noqa: BLE001 - not mapped: whatever stops the store opening is the finding
        hint = getattr(exc, "hint", None) or _hint_for(exc, "open the store")
        return [*checks, Check("open the store", False, mask_uri(first_line(exc)), hint,
                               round(time.monotonic() - started, 3))]
    checks.append(Check("open the store", True, f"client mlflow {mlflow.__version__}, nbops {__version__}",
                        "", round(time.monotonic() - started, 3)))
    from nbops.core.store import use_store

    use_store(uri)
    run_id = ""
    try:
        for check in _probe(client):
            checks.append(check)
            if not check.ok:
                break
            if check.name == "create a run":
                run_id = check.detail.split()[-1]
    finally:
        _clean_up(client, run_id)
    return checks


def _probe(client: Any) -> Iterator[Check]:
    """The write checks, one at a time (a generator: each result is kept even if a later one fails)."""
    started = time.monotonic()

    def took() -> float:
        nonlocal started
        now = time.monotonic()
        seconds, started = round(now - started, 3), now
        return seconds

    try:
        exp = client.get_experiment_by_name(PROBE_EXPERIMENT)
        exp_id = exp.experiment_id if exp else client.create_experiment(PROBE_EXPERIMENT)
        run = client.create_run(exp_id, tags={"nbops.doctor": "probe"})
        client.log_param(run.info.run_id, "probe", "1")
        client.log_metric(run.info.run_id, "probe", 1.0)
    except Exception as exc:  # noqa: BLE001 - not mapped: the store's refusal, any kind, is the finding
        yield Check("create a run", False, mask_uri(first_line(exc)), _hint_for(exc, "create runs"), took())
        return
    run_id = run.info.run_id
    yield Check("create a run", True, f"run {run_id}", "", took())
    artifacts = run.info.artifact_uri
    try:
        detail = _s3_probe(artifacts) if artifacts.startswith("s3://") else _client_probe(client, run_id, artifacts)
    except Exception as exc:  # noqa: BLE001 - not mapped: any failure is this check's finding
        yield Check("artifact store", False, _artifact_failure(artifacts, exc), _artifact_hint(artifacts, exc), took())
        return
    yield Check("artifact store", True, detail, "", took())
    try:
        if not client.search_registered_models(f"name = '{PROBE_MODEL}'"):
            client.create_registered_model(PROBE_MODEL)
        version = client.create_model_version(PROBE_MODEL, f"{artifacts}/probe.json", run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - not mapped: any failure is this check's finding
        yield Check("register a model", False, mask_uri(first_line(exc)),
                    _hint_for(exc, "register model versions"), took())
        return
    yield Check("register a model", True, f"{PROBE_MODEL} version {version.version} (removed again)", "", took())
    client.set_terminated(run_id, "FINISHED")


def _client_probe(client: Any, run_id: str, artifacts: str) -> str:
    """The probe artifact written and listed through MLflow's client (for `mlflow-artifacts:`,
    through the server, which writes it to its own artifact store)."""
    with tempfile.TemporaryDirectory(prefix="nbops-doctor-") as tmp:
        probe = Path(tmp) / "probe.json"
        probe.write_text(json.dumps({"nbops": __version__}))
        client.log_artifact(run_id, str(probe))
    names = [f.path for f in client.list_artifacts(run_id)]
    if "probe.json" not in names:
        raise OSError(f"the artifact was written but is not listed ({names})")
    via = " (through the tracking server)" if artifacts.startswith("mlflow-artifacts:") else ""
    return f"{mask_uri(artifacts)}{via}: wrote and listed probe.json"


def _s3_config() -> dict[str, Any]:
    """boto3's client arguments for the S3 store of this environment, with short timeouts and one
    attempt (botocore's defaults: 60 s timeouts and retries, ~20 s for an endpoint that is down)."""
    from botocore.config import Config

    kwargs: dict[str, Any] = {"config": Config(connect_timeout=3, read_timeout=3, retries={"max_attempts": 1})}
    if os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
        kwargs["endpoint_url"] = os.environ["MLFLOW_S3_ENDPOINT_URL"]
    return kwargs


def _s3_probe(artifacts: str) -> str:
    """probe.json written to, read back from and removed from the run's S3 folder with boto3."""
    import boto3

    bucket, _, prefix = artifacts[len("s3://"):].partition("/")
    key = f"{prefix.rstrip('/')}/probe.json".lstrip("/")
    s3 = boto3.client("s3", **_s3_config())
    body = json.dumps({"nbops": __version__}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
        raise OSError(f"s3://{bucket}/{key} read back differs from what was written")
    s3.delete_object(Bucket=bucket, Key=key)
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or "AWS"
    return f"S3 bucket {bucket} at {endpoint}: wrote, read back and removed probe.json"


def _artifact_failure(artifacts: str, exc: BaseException) -> str:
    text = mask_uri(first_line(exc))
    if artifacts.startswith("s3://"):
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or "AWS"
        return f"S3 ({artifacts.split('/')[2]} at {endpoint}) did not take the probe: {text}"
    if artifacts.startswith("mlflow-artifacts:"):
        if "timed out" in text.lower() or "timeout" in text.lower():
            return (f"the server did not store the probe artifact within {REQUEST_TIMEOUT_S} s: its "
                    "artifact store (S3 or another) does not answer it")
        return f"the server could not store the probe artifact in its artifact store (S3 or another): {text}"
    return f"{mask_uri(artifacts)}: {text}"


def _artifact_hint(artifacts: str, exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        return "pip install 'nbops[team]' (boto3 for an s3:// artifact store)"
    if artifacts.startswith("mlflow-artifacts:"):
        return ("the server proxies artifacts to its --artifacts-destination: is that store (S3's "
                "endpoint, the bucket) up, and does the server have its credentials? see the server's log")
    if artifacts.startswith("s3://"):
        return ("is S3 up at MLFLOW_S3_ENDPOINT_URL, and are AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "right here and in the kernels? (or serve artifacts through the server: "
                "mlflow server --serve-artifacts)")
    return _hint_for(exc, "write artifacts")


def _clean_up(client: Any, run_id: str) -> None:
    """Remove what the probe made; a failure here must not hide the findings."""
    for step in (lambda: client.delete_registered_model(PROBE_MODEL),
                 lambda: run_id and client.set_terminated(run_id, "FINISHED"),
                 lambda: run_id and client.delete_run(run_id)):
        try:
            step()
        except Exception:  # noqa: BLE001, S110 - not mapped: best effort, the probe model may not exist
            pass
