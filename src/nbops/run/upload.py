"""Deliver one spool entry (run/spool.py) to the tracking server, exactly once: `nbops run` right
after a notebook, `nbops sync` later (lifecycle/sync.py).

The server run made from an entry carries its claim (`nbops.spool_id`: a digest of the entry's
private claim_key, run/spool.py) and, once every part is there, `nbops.sync=uploaded`. Before
uploading, the runs with the entry's claim are looked up: an uploaded one is the answer; one a
killed upload left half-written is deleted and the entry uploaded again. No other server run is
ever changed. While it uploads, the run carries this process's `nbops.owner`, so a sync killed
midway leaves no RUNNING run for long: the next nbops command that opens the store ends it
(run/orphans.py) and the next sync replaces it. An entry an older nbops wrote (no claim_key)
finds its runs by its spool id, which may be public: such runs are only read (an uploaded one is
the answer), never ended, replaced or deleted, so a forged old-style entry changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.errors import NotFound, TrackingError, first_line, map_mlflow_errors, store_errors
from nbops.core.store import QUIET_MLFLOW, mask_uri, mlflow_settings
from nbops.notebook.document import ModelSpec
from nbops.run import orphans, spool

UPLOADED_TAG = "nbops.sync"  # "uploaded": every part of the record is on the server
REPLACED_TAG = "nbops.replaced_by"  # a partial server run (same claim) the uploaded run replaces


@dataclass(frozen=True)
class Delivered:
    run_id: str
    experiment_id: str
    model_name: str | None = None
    model_version: str | None = None
    note: str = ""  # why no model was registered


class ArtifactStoreError(TrackingError):
    """The artifact store behind the server (S3, ...) refused or did not answer."""


def upload_errors() -> tuple[type[BaseException], ...]:
    """The server or its artifact store failing (the entry stays in the spool), not a bug: the
    store's failures (core/errors.py: store_errors), nbops's TrackingErrors on the way (a bad
    entry, the artifact store) and those of S3's clients (boto3, botocore)."""
    import sys

    kinds = (*store_errors(), TrackingError)
    for module, name in (("botocore.exceptions", "BotoCoreError"), ("botocore.exceptions", "ClientError"),
                         ("boto3.exceptions", "Boto3Error"), ("s3transfer.exceptions", "RetriesExceededError")):
        loaded = sys.modules.get(module)  # not imported: none of its exceptions can be raised
        if loaded is not None:
            kinds += (getattr(loaded, name),)
    return kinds


def is_upload_error(exc: BaseException) -> bool:
    return isinstance(exc, upload_errors())


def cause(exc: BaseException) -> str:
    """One line naming what failed: the artifact store or the tracking server."""
    text = mask_uri(first_line(exc))
    s3 = ("botocore", "boto3", "s3transfer")
    artifact = isinstance(exc, ArtifactStoreError) or type(exc).__module__.startswith(s3)
    if artifact:
        return f"the artifact store failed: {text}"
    return text if text.startswith("the tracking server") else f"the tracking server failed: {text}"


def model_spec(intent: dict[str, Any] | None) -> ModelSpec | None:
    from nbops.core.gates import parse_gate

    if not intent:
        return None
    return ModelSpec(intent["name"], tuple(parse_gate(g, "spool") for g in intent.get("gates", [])),
                     intent.get("compare"), bool(intent.get("higher_is_better", True)))


def _copy_model(client: Any, exp_id: str, run_id: str, meta: dict[str, Any], folder: Path) -> None:
    model = client.create_logged_model(exp_id, name=meta.get("name"), source_run_id=run_id,
                                       params=meta.get("params") or None, tags=meta.get("tags") or None,
                                       model_type=meta.get("model_type"))
    from mlflow.entities import LoggedModelOutput

    # the run's output, as `log_model` in a run makes it (right after creating the model):
    # `runs:/<run id>/<name>` finds the model only through the run's outputs
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
    _artifacts(lambda: client.log_model_artifacts(model.model_id, str(folder)))
    client.finalize_logged_model(model.model_id, "READY")


def _artifacts(call: Callable[[], Any]) -> Any:
    """CALL uploads files: a failure of the artifact store (a 5xx of the server's artifact proxy,
    or S3 itself) is said as such, not as the tracking store's."""
    try:
        return call()
    except upload_errors() as exc:
        raise ArtifactStoreError(mask_uri(first_line(exc))) from exc


def _partial_parts(client: Any, uri: str, partial: Any, tmp: Path) -> tuple[list[dict[str, Any]], Path | None,
                                                                           list[tuple[dict[str, Any], Path]]]:
    """What a run nbops started directly on the server logged before the server was lost (the
    Ray executor's kernels log there): every step of its metrics, its artifacts, its models."""
    import mlflow

    run_id = partial.info.run_id
    rows = []
    for key in partial.data.metrics:
        rows += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                 for m in client.get_metric_history(run_id, key)]
    files = Path(client.download_artifacts(run_id, "", str(tmp / "run"))) if client.list_artifacts(run_id) else None
    models = []
    for i, m in enumerate(client.search_logged_models(experiment_ids=[partial.info.experiment_id],
                                                      filter_string=f"source_run_id = '{run_id}'")):
        if str(m.status).endswith("READY"):
            local = mlflow.artifacts.download_artifacts(artifact_uri=m.artifact_location,
                                                        dst_path=str(tmp / f"m{i}"), tracking_uri=uri)
            models.append(({"name": m.name, "model_type": m.model_type, "params": m.params,
                            "tags": {k: v for k, v in (m.tags or {}).items() if not k.startswith("mlflow.")}},
                           Path(local)))
    return rows, files, models


def _create(client: Any, uri: str, exp_id: str, entry: Path, record: dict[str, Any], partial: Any) -> str:
    """A new server run holding the whole record (and what PARTIAL, the run nbops started on the
    server before it was lost, logged): its id."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nbops-upload-") as tmp:
        rows, files, models = _partial_parts(client, uri, partial, Path(tmp)) if partial is not None else ([], None, [])
        return _create_run(client, exp_id, entry, {**record, "metrics": rows + record["metrics"]}, files, models)


def _create_run(client: Any, exp_id: str, entry: Path, record: dict[str, Any], more_files: Path | None,
                more_models: list[tuple[dict[str, Any], Path]]) -> str:
    drop = {orphans.OWNER_TAG, orphans.HEARTBEAT_TAG, UPLOADED_TAG, spool.SPOOL_TAG}
    tags = {k: v for k, v in record["tags"].items() if k not in drop}
    tags.update({spool.SPOOL_TAG: _tag(record), orphans.OWNER_TAG: orphans.owner()})
    run = client.create_run(exp_id, start_time=record.get("start_time") or None, tags=tags,
                            run_name=record.get("run_name") or None)
    run_id = run.info.run_id
    try:
        _fill(client, exp_id, run_id, entry, record, more_files, more_models)
    except BaseException:
        _drop(client, run_id)
        raise
    return run_id


def _drop(client: Any, run_id: str) -> None:
    """A half-uploaded run ends KILLED and deleted at once when the server still answers (else the
    next sync does it: the run carries the entry's claim)."""
    try:
        client.set_terminated(run_id, "KILLED")
        client.delete_run(run_id)
    except Exception:  # noqa: BLE001 - not mapped: already failing, the first error is the one to say
        pass


def _fill(client: Any, exp_id: str, run_id: str, entry: Path, record: dict[str, Any], more_files: Path | None,
          more_models: list[tuple[dict[str, Any], Path]]) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    params = [Param(k, v) for k, v in record["params"].items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    unique = {(r["key"], r["step"], r["timestamp"], r["value"]): r for r in record["metrics"]}
    metrics = [Metric(r["key"], float(r["value"]), r["timestamp"], r["step"]) for r in unique.values()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    datasets = record.get("datasets") or []
    if datasets:
        client.log_inputs(run_id, datasets=[
            DatasetInput(Dataset(d["name"], d["digest"], d.get("source_type", "local"), d.get("source", ""),
                                 d.get("schema") or None, d.get("profile") or None),
                         tags=[InputTag("mlflow.data.context", d["context"])] if d.get("context") else [])
            for d in datasets])
    for folder in (more_files, entry / "artifacts"):
        if folder is not None and folder.is_dir() and any(folder.iterdir()):
            where = str(folder)
            _artifacts(lambda: client.log_artifacts(run_id, where))  # noqa: B023 - called at once
    for meta, folder in [*more_models, *spool.models(entry)]:
        _copy_model(client, exp_id, run_id, meta, folder)
    # ended first, then marked whole: a run marked uploaded is never left RUNNING for the orphan
    # reaper to end KILLED (killed in between, the run is unmarked and the next sync redoes it)
    client.set_terminated(run_id, record["status"], end_time=record.get("end_time") or None)
    client.set_tag(run_id, UPLOADED_TAG, "uploaded")


def _tag(record: dict[str, Any]) -> str:
    """The `nbops.spool_id` tag of the runs made for RECORD: its claim; an older nbops's entry
    (no claim_key) tagged them with its spool id."""
    key = record.get("claim_key")
    return spool.claim(key) if key else record["spool_id"]


def _check_server_run(client: Any, uri: str, record: dict[str, Any]) -> None:
    """An entry may name the run nbops started on the server before it was lost: it is only
    ever this entry's when it carries the entry's claim (never any other run)."""
    named = record.get("server_run_id")
    if not named:
        return
    try:
        with map_mlflow_errors(what=f"cannot read the run {named} the entry names", store=uri):
            run = client.get_run(named)
    except NotFound:
        return
    if run.data.tags.get(spool.SPOOL_TAG) != _tag(record):
        raise spool.BadEntry(f"server_run_id {named} names a run this entry did not create",
                             hint="it is kept in .nbops/spool/quarantine/ and never uploaded")


def deliver(client: Any, uri: str, experiment_id: Callable[[str], str], entry: Path,
            record: dict[str, Any], registrar: Any) -> Delivered:
    """Upload ENTRY (validated as RECORD) unless an earlier attempt did, then register its model
    when the record asks for it and the gates hold. The caller holds the entry's lock and
    removes the entry after this returns. What is read is a snapshot of ENTRY, validated again
    (run/snapshot.py): a file swapped for a link since RECORD's check is never followed."""
    from nbops.run.snapshot import snapshot

    with snapshot(entry) as snap:
        return _deliver(client, uri, experiment_id, snap, spool.validate(snap), registrar)


def _deliver(client: Any, uri: str, experiment_id: Callable[[str], str], entry: Path,
             record: dict[str, Any], registrar: Any) -> Delivered:
    from mlflow.entities import ViewType

    mlflow_settings(QUIET_MLFLOW)  # no "View run" lines
    claimed = bool(record.get("claim_key"))  # else an older nbops's entry: its runs are only read
    _check_server_run(client, uri, record)
    exp_id = experiment_id(record["experiment"])
    found = client.search_runs([exp_id], filter_string=f"tags.`{spool.SPOOL_TAG}` = '{_tag(record)}'",
                               run_view_type=ViewType.ACTIVE_ONLY)
    run_id, partial = "", None
    for run in found:  # only runs that carry this entry's claim: ours
        if run.data.tags.get(UPLOADED_TAG) == "uploaded" and not run_id:
            run_id = run.info.run_id
            if claimed and run.info.status != record["status"]:  # ended by someone else since
                client.set_terminated(run_id, record["status"], end_time=record.get("end_time") or None)
        elif not claimed:
            continue
        elif run.info.run_id == record.get("server_run_id"):
            partial = run  # started on the server before it was lost: replaced, never deleted
        else:  # half-uploaded by an attempt that was killed: uploaded again below
            _drop(client, run.info.run_id)
    found_uploaded = bool(run_id)
    if not run_id:
        run_id = _create(client, uri, exp_id, entry, record, partial)
    if partial is not None:
        client.set_tag(partial.info.run_id, REPLACED_TAG, run_id)
        if partial.info.status != "KILLED":
            client.set_terminated(partial.info.run_id, "KILLED")
    intent = record.get("model") or {}
    if not (intent.get("register") and registrar is not None):
        return Delivered(run_id, exp_id)
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if versions:
        return Delivered(run_id, exp_id, versions[0].name, str(versions[0].version))
    if found_uploaded and not claimed:  # found by a spool id, which may be public: not proof enough
        return Delivered(run_id, exp_id, note="not registered: an older nbops's entry found this run "
                                              "uploaded (register its model with MLflow if it is yours)")
    name, version, note = registrar(client, uri, run_id, model_spec(intent))
    if version is None and note.startswith("registration failed"):
        # the store failed while registering (the registrar says so instead of raising): the entry
        # stays, and the next sync registers the model of the run it finds uploaded
        raise TrackingError(f"the model of run {run_id} is not registered yet: {note}")
    return Delivered(run_id, exp_id, name, version, note)
