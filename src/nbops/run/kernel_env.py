"""The environment nbops gives every kernel on top of its own: the store's credentials, the
project's src/ importable, no progress-bar noise, and where a pipeline's notebook finds its
upstreams' runs. The tracker adds the run's own variables (tracking.py: Tracker.kernel_env)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.run.spec import RunSpec


def kernel_base_env(settings: Settings) -> dict[str, str]:
    """What nbops adds to every kernel's environment: the store's and artifact stores'
    credentials (core/store.forwarded_env: a Ray worker elsewhere has none of this process's
    environment), and the project's src/ importable, so a notebook can `import mypkg.features`
    without installing the project."""
    from nbops.core.store import forwarded_env

    env = forwarded_env(settings.kernel_env_names)
    env.update(_quiet_progress_env())
    src = settings.path(settings.src_dir)
    if src.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    return env


def kernel_env(settings: Settings, spec: RunSpec) -> dict[str, str]:
    """kernel_base_env, plus where a pipeline's notebook finds its upstreams' runs (kit.upstream)."""
    env = kernel_base_env(settings)
    if spec.upstream:
        import json

        env["NBOPS_UPSTREAM"] = json.dumps(dict(spec.upstream))
        env["NBOPS_UPSTREAM_URI"] = settings.resolved_tracking_uri
        runs = upstream_runs(settings.resolved_tracking_uri, dict(spec.upstream))
        if runs:
            env["NBOPS_UPSTREAM_RUNS"] = runs
    return env


UPSTREAM_RUNS_MAX = 64 * 1024  # one environment string may hold 128 KiB (Linux's MAX_ARG_STRLEN)


def upstream_runs(uri: str, runs: dict[str, str]) -> str:
    """The upstreams' runs as the embedded store holds them (metrics, params, tags, the local
    artifact folder), as JSON for the kernel: `kit.upstream` then needs no `import mlflow` (~2 s a
    notebook, on a pipeline's critical path once per layer). "" when the store is not the embedded
    one, fails core/mlflow_db.py's check, keeps a run's artifacts elsewhere, or the answer is too
    long for the environment: the kernel asks MLflow's client then."""
    import json

    out = {}
    for name, run_id in runs.items():
        found = _local_run(uri, run_id)
        if found is None:
            return ""
        run, folder = found
        out[name] = {"run_id": run_id, "metrics": run.metrics, "params": run.params, "tags": run.tags,
                     "artifacts": str(folder)}
    text = json.dumps(out, allow_nan=True)
    return text if len(text) <= UPSTREAM_RUNS_MAX else ""


def run_artifacts(uri: str, run_id: str) -> dict[str, str]:
    """NBOPS_RUN_ARTIFACTS: the run's own artifact folder when an embedded store (the project's, or
    a run's local store with a server) keeps it on this machine, for `kit.log_text` to write into
    without `import mlflow`; {} otherwise (it then goes through MLflow)."""
    found = _local_run(uri, run_id)
    if found is None:
        return {"NBOPS_RUN_ARTIFACTS": ""}  # never an inherited value from an outer nbops run
    found[1].mkdir(parents=True, exist_ok=True)  # here, where the store is: kit.log_text checks it
    return {"NBOPS_RUN_ARTIFACTS": str(found[1])}


def _local_run(uri: str, run_id: str) -> tuple[Any, Path] | None:
    """(the run as the embedded store at URI holds it, its local artifact folder), or None when
    the store is not an embedded one, fails core/mlflow_db.py's check, or keeps the artifacts
    elsewhere."""
    from urllib.parse import unquote, urlparse

    from nbops.core.mlflow_db import Unavailable
    from nbops.core.sqlite_store import SqliteReader
    from nbops.core.store import sqlite_path

    db = sqlite_path(uri)
    if db is None:
        return None
    try:
        run = SqliteReader(str(db)).run(run_id)
    except Unavailable:
        return None
    location = urlparse(run.artifact_uri) if run else None
    # a file URI (nbops's experiments), or a plain absolute path (MLflow's default artifact root)
    if run is None or location is None or location.scheme not in ("file", "") or \
            not location.path.startswith("/"):
        return None
    folder = Path(unquote(location.path))
    return (run, folder) if folder.is_dir() or not folder.exists() else None


# tqdm's one warning that a kernel without ipywidgets cannot draw a notebook progress bar
TQDM_NO_WIDGETS = "ignore:IProgress not found:Warning"


def _quiet_progress_env() -> dict[str, str]:
    """No progress-bar noise in a run's report. `import mlflow` imports `tqdm.auto` (mlflow.genai),
    which in a kernel without ipywidgets warns "TqdmWarning: IProgress not found", with the venv's
    path, into the first cell that imports mlflow (`log_model`): that one warning is ignored in the
    kernel (PYTHONWARNINGS, the user's own filters kept), every other warning still shows. And
    MLflow's artifact bars (a model's download in `batch_predict`) stay out of the saved notebook
    unless MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR is set."""
    given = os.environ.get("PYTHONWARNINGS", "")
    return {"PYTHONWARNINGS": ",".join(w for w in (given, TQDM_NO_WIDGETS) if w),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")}
