"""Kernel side: what the notebooks a pipeline notebook needs logged, read with one call.

`nbops run` hands a pipeline notebook's kernel the MLflow run of each notebook it needs
(`NBOPS_UPSTREAM`: name -> run id, the children of the same pipeline run, or for a notebook not
run this time its newest successful run with its current fingerprint) and the store holding them
(`NBOPS_UPSTREAM_URI`). `nbops.kit.upstream("prepare")` reads one: its records, metrics, params
and a local folder with its artifacts. With the embedded store `nbops run` also hands over what the
store holds of each (`NBOPS_UPSTREAM_RUNS`: run/kernel_env.py) and nothing imports mlflow; else
mlflow is imported on the first call, never at import.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Upstream:
    name: str  # the notebook's stem, as metadata.nbops.needs names it
    run_id: str
    records: dict[str, Any]  # what it recorded with nbops.record (scraps): metrics and other values
    metrics: dict[str, float]  # the run's metrics in MLflow
    params: dict[str, str]  # the run's parameters in MLflow
    artifacts: Path  # a local folder with the run's artifacts (read them; do not write there)
    tags: dict[str, str] = field(default_factory=dict, repr=False)

    def artifact(self, path: str) -> Path:
        """The local path of one of its artifacts (`upstream("prepare").artifact("data/train.csv")`)."""
        found = self.artifacts / path
        if not found.exists():
            have = sorted(str(p.relative_to(self.artifacts)) for p in self.artifacts.rglob("*") if p.is_file())
            raise FileNotFoundError(f"upstream {self.name!r} (run {self.run_id[:8]}) logged no artifact "
                                    f"{path!r}; it has: {', '.join(have[:20]) or 'none'}")
        return found

    def model_path(self, name: str = "model") -> Path:
        """A local folder with the model it logged under NAME (`log_model(..., name=NAME)`), for
        `mlflow.<flavor>.load_model(str(path))`. Read from the pipeline's store, not from the
        kernel's own (with a server the kernel logs into a local store of its own, where
        `runs:/<upstream run id>/model` does not resolve)."""
        import mlflow.artifacts
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("NBOPS_UPSTREAM_URI") or os.environ.get("MLFLOW_TRACKING_URI")
        client = MlflowClient(tracking_uri=uri)
        # the logged model found by its run, not through `runs:/` (MLflow 3.17 resolves that URI's
        # model against the process's tracking URI, whatever tracking_uri it is given)
        experiment = client.get_run(self.run_id).info.experiment_id
        models = [m for m in client.search_logged_models(experiment_ids=[experiment],
                                                         filter_string=f"source_run_id = '{self.run_id}'")]
        named = [m for m in models if m.name == name and str(m.status).endswith("READY")]
        if not named:
            raise LookupError(f"upstream {self.name!r} (run {self.run_id[:8]}) logged no model named {name!r}; "
                              f"it logged: {', '.join(sorted({m.name for m in models})) or 'none'}")
        newest = max(named, key=lambda m: m.creation_timestamp or 0)
        target = _scratch(f"{self.name}-{name}")
        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=newest.artifact_location,
                                                            dst_path=target, tracking_uri=uri))
        except BaseException:
            import shutil

            shutil.rmtree(target, ignore_errors=True)
            raise


_READ: dict[str, Upstream] = {}


def upstream(name: str) -> Upstream:
    """The run of the notebook NAME this notebook needs, in this pipeline run."""
    runs = json.loads(os.environ.get("NBOPS_UPSTREAM") or "{}")
    if name not in runs:
        if not runs:
            raise LookupError(
                f"upstream({name!r}): no upstream runs in this kernel; run the pipeline with `nbops run` "
                f"(tracked, not --no-track), this notebook declaring \"needs\": [{name!r}] in metadata.nbops")
        raise LookupError(f"upstream({name!r}): this notebook needs {', '.join(sorted(runs))}, "
                          f"not {name!r} (metadata.nbops.needs)")
    if name in _READ:
        return _READ[name]
    given = json.loads(os.environ.get("NBOPS_UPSTREAM_RUNS") or "{}").get(name)
    # read from the embedded store by `nbops run`; a Ray worker on another machine has no such folder
    if given and given.get("run_id") == runs[name] and Path(given["artifacts"]).is_dir():
        folder = Path(given["artifacts"])
        _READ[name] = Upstream(name=name, run_id=given["run_id"], records=_records(folder),
                               metrics=given["metrics"], params=given["params"], artifacts=folder,
                               tags=given["tags"])
        return _READ[name]
    from mlflow.tracking import MlflowClient

    uri = os.environ.get("NBOPS_UPSTREAM_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(runs[name])
    folder = _local_artifacts(client, run.info.run_id, run.info.artifact_uri, name)
    found = Upstream(name=name, run_id=run.info.run_id, records=_records(folder), metrics=dict(run.data.metrics),
                     params=dict(run.data.params), artifacts=folder, tags=dict(run.data.tags))
    _READ[name] = found
    return found


def _records(folder: Path) -> dict[str, Any]:
    """What the run recorded with nbops.record (its nbops/records.json artifact)."""
    records_file = folder / "nbops" / "records.json"
    return json.loads(records_file.read_text(encoding="utf-8")) if records_file.is_file() else {}


def _scratch(name: str) -> str:
    """A temporary folder for a download that lives as long as the kernel that reads it: removed
    when it exits, or at once by the caller when the download fails (nothing left in /tmp by a
    pipeline on a server)."""
    import atexit
    import shutil

    target = tempfile.mkdtemp(prefix=f"nbops-upstream-{name}-")
    atexit.register(shutil.rmtree, target, True)
    return target


def _local_artifacts(client: Any, run_id: str, artifact_uri: str, name: str) -> Path:
    """The run's artifact folder itself when it is local (the embedded store), else a download."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(artifact_uri or "")
    if parsed.scheme == "file" or (not parsed.scheme and artifact_uri.startswith("/")):
        folder = Path(unquote(parsed.path))
        if folder.is_dir():
            return folder
    import shutil

    target = _scratch(name)
    try:
        return Path(client.download_artifacts(run_id, "", dst_path=target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
