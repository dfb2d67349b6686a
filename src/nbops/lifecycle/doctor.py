"""`nbops doctor`: can this project's store do what nbops needs? One check a line, each with a
hint when it fails.

The checks, in order (a failed one stops those that need it): which store and where that came
from; the server answers (its MLflow version next to ours); a run can be created, given a param
and a metric, and ended; an artifact can be written and read back (for a server with proxied
artifacts this goes through the server; otherwise straight to the artifact store, which needs its
credentials here and in every kernel); a model version can be registered. What the checks make
is removed again: the probe run is deleted and the probe model too, so the store is as before
(a deleted run stays in MLflow's trash until `mlflow gc`).
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops import __version__
from nbops.core.config import Settings
from nbops.core.errors import first_line
from nbops.core.store import mask_uri

PROBE_EXPERIMENT = "nbops-doctor"
PROBE_MODEL = "nbops-doctor-probe"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


def _hint_for(exc: BaseException, what: str) -> str:
    text = str(exc)
    if "psycopg" in text or "No module named" in text:
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
        with urllib.request.urlopen(f"{uri.rstrip('/')}/version", timeout=5) as reply:  # noqa: S310 - http(s) only
            return reply.read(64).decode(errors="replace").strip()
    except OSError:
        return ""


def _store_kind(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return "tracking server"
    if uri.startswith("sqlite:"):
        return "embedded store (sqlite file)"
    if "://" in uri and not uri.startswith("file:"):
        return "database store (no server: every client needs the driver and the database's credentials)"
    return "file store"


def diagnose(settings: Settings) -> list[Check]:
    """Every check, in order; stops after the first failure that the others depend on."""
    import mlflow

    from nbops.core.store import use_store
    from nbops.run.orphans import open_client

    uri = settings.resolved_tracking_uri
    source = settings.sources.get("tracking_uri", "default")
    checks = [Check("store", True, f"{mask_uri(uri)} ({_store_kind(uri)}; from {source})")]
    started = time.monotonic()
    try:
        client, _ = open_client(uri)
    except Exception as exc:  # noqa: BLE001 - whatever stops the store from opening is the finding
        hint = getattr(exc, "hint", None) or _hint_for(exc, "open the store")
        return [*checks, Check("reachable", False, mask_uri(first_line(exc)), hint)]
    server = _server_version(uri)
    versions = f"client mlflow {mlflow.__version__}, nbops {__version__}"
    if server:
        versions = f"server mlflow {server}, {versions}"
    checks.append(Check("reachable", True, f"answered in {time.monotonic() - started:.1f} s ({versions})"))
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


def _probe(client: Any):
    """The write checks, one at a time (a generator: each result is kept even if a later one fails)."""
    try:
        exp = client.get_experiment_by_name(PROBE_EXPERIMENT)
        exp_id = exp.experiment_id if exp else client.create_experiment(PROBE_EXPERIMENT)
        run = client.create_run(exp_id, tags={"nbops.doctor": "probe"})
        client.log_param(run.info.run_id, "probe", "1")
        client.log_metric(run.info.run_id, "probe", 1.0)
    except Exception as exc:  # noqa: BLE001 - the store's refusal is the finding
        yield Check("create a run", False, mask_uri(first_line(exc)), _hint_for(exc, "create runs"))
        return
    run_id = run.info.run_id
    yield Check("create a run", True, f"run {run_id}")
    try:
        with tempfile.TemporaryDirectory(prefix="nbops-doctor-") as tmp:
            probe = Path(tmp) / "probe.json"
            probe.write_text(json.dumps({"nbops": __version__}))
            client.log_artifact(run_id, str(probe))
        names = [f.path for f in client.list_artifacts(run_id)]
        if "probe.json" not in names:
            raise OSError(f"the artifact was written but is not listed ({names})")
    except Exception as exc:  # noqa: BLE001
        yield Check("write an artifact", False, mask_uri(first_line(exc)),
                    _hint_for(exc, "write artifacts"))
        return
    yield Check("write an artifact", True, mask_uri(run.info.artifact_uri))
    try:
        if not client.search_registered_models(f"name = '{PROBE_MODEL}'"):
            client.create_registered_model(PROBE_MODEL)
        version = client.create_model_version(PROBE_MODEL, f"{run.info.artifact_uri}/probe.json",
                                              run_id=run_id)
    except Exception as exc:  # noqa: BLE001
        yield Check("register a model", False, mask_uri(first_line(exc)),
                    _hint_for(exc, "register model versions"))
        return
    yield Check("register a model", True, f"{PROBE_MODEL} version {version.version} (removed again)")
    client.set_terminated(run_id, "FINISHED")


def _clean_up(client: Any, run_id: str) -> None:
    """Remove what the probe made; a failure here must not hide the findings."""
    for step in (lambda: client.delete_registered_model(PROBE_MODEL),
                 lambda: run_id and client.set_terminated(run_id, "FINISHED"),
                 lambda: run_id and client.delete_run(run_id)):
        try:
            step()
        except Exception:  # noqa: BLE001, S110 - best effort: the probe model may not exist
            pass
