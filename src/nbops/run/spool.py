"""The spool: a run the tracking server could not take, kept whole in `.nbops/spool/<id>/` for
`nbops sync` (nbops.lifecycle.sync) to upload later.

One entry is a folder named by its spool id (a uuid), written to a hidden temporary folder and
renamed into place, so a reader sees a whole entry or none:

    spool.json      the record: format, spool_id, experiment, run_name, server_run_id (the partial
                    run on the server, when one was created), tags, params, metrics (key, value,
                    timestamp, step), status, start/end time, model (spec, register, logged)
    artifacts/      the run's artifacts as they are laid out in MLflow (notebook/<executed>.ipynb,
                    notebook/<kernel log>, nbops/records.json, nbops/other_records.json)
    models/<n>/     models the kernel logged while the server was away (a scratch store's logged
                    model: model.json with its name and type, files/ its artifacts)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbops.core.errors import TrackingError

FORMAT = 1
SPOOL_DIR = Path(".nbops") / "spool"
SPOOL_TAG = "nbops.spool_id"  # the uploaded run's tag: a retried sync finds it instead of duplicating
REPLACED_TAG = "nbops.replaced_by"  # the partial server run a synced run replaces
RECORD = "spool.json"


def spool_root(project_root: Path) -> Path:
    return project_root / SPOOL_DIR


def new_id() -> str:
    return uuid.uuid4().hex


def metric_rows(values: dict[str, float], timestamp_ms: int | None = None, step: int = 0) -> list[dict[str, Any]]:
    """Finite metrics as spool rows (MLflow refuses none, but JSON cannot hold NaN portably)."""
    now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return [{"key": k, "value": float(v), "timestamp": now, "step": step}
            for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)]


def write(root: Path, record: dict[str, Any], artifacts: dict[str, Path],
          models: list[tuple[dict[str, Any], Path]] = ()) -> Path:  # type: ignore[assignment]
    """Write one entry atomically under ROOT: RECORD plus ARTIFACTS ({artifact path: local file})
    and MODELS ([(meta, local folder)]); returns its folder. Nothing is left half-written."""
    spool_id = record.get("spool_id") or new_id()
    record = {"format": FORMAT, **record, "spool_id": spool_id}
    root.mkdir(parents=True, exist_ok=True)
    final = root / spool_id
    tmp = root / f".tmp-{spool_id}"
    try:
        (tmp / "artifacts").mkdir(parents=True)
        files = []
        for rel, src in artifacts.items():
            dest = tmp / "artifacts" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            files.append(rel)
        record["files"] = sorted(files)
        metas = []
        for i, (meta, folder) in enumerate(models):
            dest = tmp / "models" / str(i)
            shutil.copytree(folder, dest / "files")
            (dest / "model.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            metas.append(meta)
        record["spooled_models"] = len(metas)
        with open(tmp / RECORD, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read(entry: Path) -> dict[str, Any]:
    """An entry's record; a TrackingError naming the file when it is not one nbops wrote."""
    path = entry / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrackingError(f"{path}: not a spool record ({exc})",
                            hint="remove the folder if it is not a run nbops kept") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("spool_id") != entry.name:
        raise TrackingError(f"{path}: not a spool record of format {FORMAT}",
                            hint="remove the folder if it is not a run nbops kept")
    return record


def entries(root: Path) -> list[Path]:
    """The whole entries under ROOT, oldest first (temporary folders of a writer are skipped)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / RECORD).is_file()]
    return sorted(found, key=lambda p: (p / RECORD).stat().st_mtime)


def models(entry: Path) -> list[tuple[dict[str, Any], Path]]:
    """The entry's spooled models: (meta, folder of the model's files)."""
    out = []
    folder = entry / "models"
    if folder.is_dir():
        for sub in sorted(folder.iterdir(), key=lambda p: p.name):
            meta = json.loads((sub / "model.json").read_text(encoding="utf-8"))
            out.append((meta, sub / "files"))
    return out


@contextmanager
def uploading(root: Path) -> Iterator[None]:
    """Held by `nbops sync` while it uploads ROOT's entries: a second sync of the same spool stops
    with one line instead of uploading the same runs again (an flock on the folder itself, so
    nothing is left behind, and a sync that dies lets go of it with its process)."""
    import fcntl

    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrackingError(f"another `nbops sync` is uploading {root} now",
                                hint="wait for it to finish; it uploads every entry") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove(entry: Path) -> None:
    """Remove an uploaded entry: renamed away first, so a reader never sees half of one."""
    gone = entry.parent / f".tmp-done-{entry.name}"
    os.rename(entry, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _scratch_client(scratch: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{Path(scratch) / 'mlflow.db'}")


def scratch_metrics(scratch: str, run_id: str) -> list[dict[str, Any]]:
    """Every metric a kernel logged into the scratch store in SCRATCH (a run started while the
    server was away), each step of its history, as spool rows."""
    if not scratch:
        return []
    client = _scratch_client(scratch)
    rows = []
    for key in client.get_run(run_id).data.metrics:
        rows += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                 for m in client.get_metric_history(run_id, key)]
    return rows


def scratch_models(scratch: str, run_id: str) -> list[tuple[dict[str, Any], Path]]:
    """The models a kernel logged into the scratch store: (meta, folder of the model's files)."""
    if not scratch:
        return []
    client = _scratch_client(scratch)
    run = client.get_run(run_id)
    out = []
    for m in client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'"):
        local = Path(m.artifact_location.removeprefix("file://"))
        if local.is_dir():
            out.append(({"name": m.name, "model_type": m.model_type, "params": m.params or {},
                         "tags": {k: v for k, v in (m.tags or {}).items() if not k.startswith("mlflow.")}},
                        local))
    return out


def pending_line(project_root: Path) -> str:
    """One line when the spool is not empty ('' when it is)."""
    count = len(entries(spool_root(project_root)))
    if not count:
        return ""
    return (f"note: {count} run(s) not yet recorded are kept in {SPOOL_DIR}; "
            "`nbops sync` uploads them")
