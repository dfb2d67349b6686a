"""A run logged locally first: with a tracking server (or a team's database), what a run records,
in nbops and in the kernel (params, tags, datasets, metrics, artifacts, logged models), lands in a
private MLflow store of its own, `.nbops/spool/.run-<spool id>/` (sqlite plus an artifact folder),
and never on the server while the notebook runs. When the kernel is done, `collect` turns that
store into a spool entry (run/spool.py), which run/upload.py delivers: a server or S3 that fails
at any moment costs no run (the design W&B's and Neptune's offline modes use; MLflow has none).

Each local run's database is made by run/newstore.py: a copy of this user's migrated empty store
for the installed MLflow (MLflow's own migrations take seconds).
A local run whose nbops process died (kill -9) is removed by the next run, sync or `runs gc`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.files import local_path
from nbops.run import orphans, spool

OWNER_FILE = "owner"


@dataclass(frozen=True)
class LocalRun:
    folder: Path  # .nbops/spool/.run-<spool id>
    spool_id: str
    run_id: str
    experiment_id: str

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"


def logs_locally_first(uri: str) -> bool:
    """A tracking server or a team's database: runs are logged locally first, then uploaded."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    return scheme in ("http", "https", "postgresql", "postgres", "mysql", "mssql", "databricks")


def open_local(project_root: Path, experiment: str, tags: dict[str, str], run_name: str,
               start_ms: int) -> tuple[LocalRun, Any]:
    """A new local run (its store, and the run-store object the Tracker writes through)."""
    from nbops.core.run_store import LazyClient, open_store
    from nbops.run.newstore import create_sqlite

    root = spool.spool_root(project_root)
    sid = spool.new_id()
    folder = root / f".run-{sid}"
    folder.mkdir(parents=True)
    try:
        (folder / OWNER_FILE).write_text(orphans.owner(), encoding="utf-8")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        create_sqlite(uri)
        store = open_store(uri, LazyClient(lambda: _client(uri)))
        exp_id = store.experiment_id(experiment, (folder / "artifacts").resolve().as_uri())
        run_id = store.create_run(exp_id, tags, run_name, start_ms)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return LocalRun(folder, sid, run_id, exp_id), store


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def kernel_env(local: LocalRun, server_uri: str) -> dict[str, str]:
    """The kernel logs into the local run; nbops's own reads in the kernel (a registered model
    that batch_predict scores) still go to the project's store (NBOPS_TRACKING_URI)."""
    return {"MLFLOW_TRACKING_URI": local.uri, "MLFLOW_REGISTRY_URI": local.uri,
            "MLFLOW_RUN_ID": local.run_id, "MLFLOW_EXPERIMENT_ID": local.experiment_id,
            "NBOPS_TRACKING_URI": server_uri}


def collect(local: LocalRun) -> tuple[dict[str, Any], dict[str, Path], list[tuple[dict[str, Any], Path]]]:
    """What the local run holds: (record fields, {artifact path: file}, [(model meta, folder)])."""
    client = _client(local.uri)
    run = client.get_run(local.run_id)
    metrics = []
    for key in run.data.metrics:
        metrics += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                    for m in client.get_metric_history(local.run_id, key)]
    datasets = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        d = item.dataset
        context = next((t.value for t in item.tags if t.key == "mlflow.data.context"), "")
        datasets.append({k: v for k, v in {"name": d.name, "digest": d.digest, "source_type": d.source_type,
                                          "source": d.source, "schema": d.schema or "", "profile": d.profile or "",
                                          "context": context}.items() if isinstance(v, str)})
    drop = {orphans.OWNER_TAG, orphans.HEARTBEAT_TAG}
    record = {"params": dict(run.data.params), "metrics": metrics, "datasets": datasets,
              "tags": {k: v for k, v in run.data.tags.items() if k not in drop},
              "start_time": run.info.start_time}
    artifacts: dict[str, Path] = {}
    base = local_path(run.info.artifact_uri)
    if base is not None and base.is_dir():
        for folder, _, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink() and not name.startswith(".artifact.uploading."):
                    artifacts[path.relative_to(base).as_posix()] = path
    models = []
    for m in client.search_logged_models(experiment_ids=[local.experiment_id],
                                         filter_string=f"source_run_id = '{local.run_id}'"):
        where = local_path(m.artifact_location)
        if where is not None and where.is_dir() and str(m.status).endswith("READY"):
            models.append(({"name": m.name, "model_type": m.model_type, "params": dict(m.params or {}),
                            "tags": {k: v for k, v in (m.tags or {}).items() if not k.startswith("mlflow.")}},
                           where))
    return record, artifacts, models


def discard(local: LocalRun) -> None:
    shutil.rmtree(local.folder, ignore_errors=True)


def sweep_dead(project_root: Path) -> list[Path]:
    """Remove the local runs (and a writer's temporary entries) whose nbops process is gone: what
    a `kill -9` of nbops left. Returns what was removed."""
    root = spool.spool_root(project_root)
    gone: list[Path] = []
    if not root.is_dir():
        return gone
    for folder in root.iterdir():
        if not folder.name.startswith((".run-", ".tmp-")) or not folder.is_dir():
            continue
        try:
            owner = (folder / OWNER_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            owner = ""
        if folder.name.startswith(".tmp-") and not owner:
            # a writer's temporary entry: dead when nobody touched it for an hour
            if time.time() - folder.stat().st_mtime < 3600:
                continue
        elif orphans.owner_alive(owner) is not False:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        gone.append(folder)
    return gone
