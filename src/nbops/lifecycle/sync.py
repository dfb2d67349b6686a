"""`nbops sync`: upload the runs kept in `.nbops/spool` (run/spool.py) once the server is back.

Idempotent: the uploaded run carries the entry's spool id (tag `nbops.spool_id`); a sync finds it
before creating one. A run left half-uploaded by a sync that was killed (no `nbops.sync` tag) is
deleted and uploaded again; a model version is registered only when the run has none. The partial
run the server kept (RUNNING, or KILLED by the orphan reaper) gets `nbops.replaced_by` and ends
KILLED. What the partial run had (every step of every metric, artifacts, logged models) is copied
into the new one, with what the spool holds. An entry is removed only after all of that.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import first_line
from nbops.core.store import is_not_found, is_store_error, mask_uri
from nbops.notebook.document import ModelSpec
from nbops.run import orphans, spool

UPLOADED_TAG = "nbops.sync"  # "uploaded": every part of the record is on the server


@dataclass(frozen=True)
class Synced:
    spool_id: str
    notebook: str
    run_id: str = ""
    replaced: str = ""
    model: str = ""  # "name vN" when a version was registered (now or by an earlier sync)
    note: str = ""
    error: str = ""


def _spec(intent: dict[str, Any] | None) -> ModelSpec | None:
    from nbops.core.gates import parse_gate

    if not intent:
        return None
    return ModelSpec(intent["name"], tuple(parse_gate(g, "spool") for g in intent.get("gates", [])),
                     intent.get("compare"), bool(intent.get("higher_is_better", True)))


def _server_metrics(client: Any, run: Any) -> list[dict[str, Any]]:
    rows = []
    for key in run.data.metrics:
        rows += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                 for m in client.get_metric_history(run.info.run_id, key)]
    return rows


def _copy_model(client: Any, exp_id: str, run_id: str, meta: dict[str, Any], folder: Path) -> None:
    model = client.create_logged_model(exp_id, name=meta.get("name"), source_run_id=run_id,
                                       params=meta.get("params") or None, tags=meta.get("tags") or None,
                                       model_type=meta.get("model_type"))
    client.log_model_artifacts(model.model_id, str(folder))
    client.finalize_logged_model(model.model_id, "READY")


def _partial(client: Any, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _upload(client: Any, uri: str, exp_id: str, entry: Path, record: dict[str, Any], partial: Any) -> str:
    """A new run holding the whole record (the partial run's parts included): its id."""
    import mlflow
    from mlflow.entities import Metric, Param

    drop = {orphans.OWNER_TAG, orphans.HEARTBEAT_TAG}
    tags = {k: v for k, v in record["tags"].items() if k not in drop}
    tags[spool.SPOOL_TAG] = record["spool_id"]
    run = client.create_run(exp_id, start_time=record.get("start_time") or None, tags=tags,
                            run_name=record.get("run_name") or None)
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in record["params"].items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    rows = (_server_metrics(client, partial) if partial else []) + record["metrics"]
    unique = {(r["key"], r["step"], r["timestamp"], r["value"]): r for r in rows}
    metrics = [Metric(r["key"], r["value"], r["timestamp"], r["step"]) for r in unique.values()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    with tempfile.TemporaryDirectory(prefix="nbops-sync-") as tmp:
        if partial is not None:  # what the notebook logged before the server went away
            if client.list_artifacts(partial.info.run_id):
                got = client.download_artifacts(partial.info.run_id, "", str(Path(tmp) / "run"))
                client.log_artifacts(run_id, got)
            logged = client.search_logged_models(experiment_ids=[partial.info.experiment_id],
                                                 filter_string=f"source_run_id = '{partial.info.run_id}'")
            for i, m in enumerate(logged):
                if str(m.status).endswith("READY"):
                    local = mlflow.artifacts.download_artifacts(artifact_uri=m.artifact_location,
                                                                dst_path=str(Path(tmp) / f"m{i}"),
                                                                tracking_uri=uri)
                    meta = {"name": m.name, "model_type": m.model_type, "params": m.params,
                            "tags": {k: v for k, v in (m.tags or {}).items() if not k.startswith("mlflow.")}}
                    _copy_model(client, exp_id, run_id, meta, Path(local))
    if (entry / "artifacts").is_dir() and any((entry / "artifacts").iterdir()):
        client.log_artifacts(run_id, str(entry / "artifacts"))
    for meta, folder in spool.models(entry):  # logged while the server was away
        _copy_model(client, exp_id, run_id, meta, folder)
    client.set_tag(run_id, UPLOADED_TAG, "uploaded")
    client.set_terminated(run_id, record["status"], end_time=record.get("end_time") or None)
    return run_id


def sync_entry(client: Any, uri: str, experiment_id: Callable[[str], str], entry: Path,
               registrar: Any) -> Synced:
    """Upload one entry (or finish an earlier sync's upload of it); the entry is removed last."""
    from mlflow.entities import ViewType

    record = spool.read(entry)
    sid, notebook = record["spool_id"], record.get("notebook", "")
    exp_id = experiment_id(record["experiment"])
    found = client.search_runs([exp_id], filter_string=f"tags.`{spool.SPOOL_TAG}` = '{sid}'",
                               run_view_type=ViewType.ACTIVE_ONLY)
    run_id = ""
    for run in found:
        if run.data.tags.get(UPLOADED_TAG) == "uploaded" and not run_id:
            run_id = run.info.run_id
        else:  # half-uploaded by a sync that was killed: uploaded again below
            client.delete_run(run.info.run_id)
    partial = _partial(client, record.get("server_run_id"))
    if not run_id:
        run_id = _upload(client, uri, exp_id, entry, record, partial)
    model, note = "", ""
    intent = record.get("model") or {}
    if intent.get("register") and registrar is not None:
        versions = client.search_model_versions(f"run_id = '{run_id}'")
        if versions:
            model = f"{versions[0].name} v{versions[0].version}"
        else:
            name, version, note = registrar(client, uri, run_id, _spec(intent))
            model = f"{name} v{version}" if version else ""
    if partial is not None:
        client.set_tag(partial.info.run_id, spool.REPLACED_TAG, run_id)
        if partial.info.status != "KILLED":
            client.set_terminated(partial.info.run_id, "KILLED")
    spool.remove(entry)
    return Synced(sid, notebook, run_id, partial.info.run_id if partial is not None else "", model, note)


def sync(settings: Settings, registrar: Any, on_done: Callable[[Synced], None] | None = None) -> list[Synced]:
    """Upload every spooled run to the project's store; one Synced per entry, in spool order."""
    from nbops.run.tracking import Tracker

    root = spool.spool_root(settings.root)
    if not spool.entries(root):
        return []
    with spool.uploading(root):  # one sync at a time
        entries = spool.entries(root)  # again: a sync that just ended may have taken them
        if not entries:
            return []
        tracker = Tracker(settings, registrar=registrar)  # reachability checked, orphans ended
        out = []
        for entry in entries:
            try:
                done = sync_entry(tracker.client, tracker.uri, tracker._experiment_id, entry, registrar)
            except Exception as exc:
                if not is_store_error(exc):
                    raise
                done = Synced(entry.name, "", error=mask_uri(first_line(exc)))
            out.append(done)
            if on_done:
                on_done(done)
        return out
