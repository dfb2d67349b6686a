"""What an MLflow run is created with, worked out from a RunSpec and git before any store is
touched: its experiment, name, tags (git, notebook, owner and heartbeat, data digest), params
and datasets; and the same for a sweep's parent run. Pure values; tracking.py writes them."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops import __version__
from nbops.core.context import GitInfo, device_name, path_dirty, relative_to_repo, who_ran
from nbops.core.secrets import MASK, is_secret_value, secret_names
from nbops.run import orphans, render
from nbops.run.spec import RunSpec

MAX_PARAM = 6000  # MLflow's limit on a param value's length


def param_value(value: Any) -> str:
    """VALUE as an MLflow param: JSON unless a string, cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


@dataclass(frozen=True)
class NewRun:
    experiment: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    datasets: list[dict[str, str]]  # the data files the run read, as MLflow dataset inputs
    start_time: int  # epoch milliseconds


def new_run(spec: RunSpec, git: GitInfo, root: Path, experiment: str | None,
            parent_run_id: str | None, review: bool) -> NewRun:
    """The run of SPEC: in EXPERIMENT (else one named after the notebook), a sweep point under
    PARENT_RUN_ID, a REVIEW run (nothing registered) tagged so that `nbops plan` never reuses it."""
    rel = relative_to_repo(spec.notebook.path, root)
    data = {relative_to_repo(p, root) for p in spec.data_files}
    digests = {path: digest for path, digest in spec.inputs.items() if path in data}
    tags = _tags(spec, git, root, rel)
    if parent_run_id:  # a sweep point: MLflow shows it nested under the sweep's run
        tags["mlflow.parentRunId"] = parent_run_id
    elif review:  # a review run: never a cached result for `nbops plan`
        tags["nbops.review"] = "true"
    if digests:
        combined = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
        tags["nbops.data_digest"] = combined
    defaults = {p.name: p.default for p in spec.notebook.parameters}
    run_name = render.run_name(spec.notebook.stem, spec.overrides, defaults, spec.secrets)
    now = int(time.time() * 1000)
    params = {k: param_value(v) for k, v in spec.logged_values.items()}
    datasets = [{"name": path, "digest": digest[:32], "source_type": "local",
                 "source": json.dumps({"uri": (root / path).as_uri()})} for path, digest in digests.items()]
    return NewRun(experiment or rel.removesuffix(".ipynb"), run_name, tags, params, datasets, now)


def _tags(spec: RunSpec, git: GitInfo, root: Path, rel: str) -> dict[str, str]:
    """Every run's tags: where it came from (git, notebook, template, device), who owns it."""
    return {
        "nbops.git_sha": git.sha,
        "nbops.git_branch": git.branch,
        "nbops.git_dirty": str(git.dirty or path_dirty(root, spec.notebook.path)).lower(),
        "nbops.notebook": rel,
        "nbops.template": spec.notebook.template or "",
        "nbops.fingerprint": spec.fingerprint,
        "nbops.version": __version__,
        "nbops.device": device_name(),
        "nbops.output": relative_to_repo(spec.output_path, root),
        orphans.OWNER_TAG: orphans.owner(),
        orphans.HEARTBEAT_TAG: str(int(time.time())),
        "mlflow.source.name": rel,
        "mlflow.source.type": "NOTEBOOK",
        "mlflow.user": who_ran(),  # MLflow's user_id: the CI actor in CI, else the login
        "mlflow.source.git.commit": git.sha,
        "mlflow.source.git.branch": git.branch,
    }


def sweep_tags(rel: str, git: GitInfo) -> dict[str, str]:
    """The tags of a sweep's parent run (notebook REL)."""
    return {"nbops.sweep": "true", "nbops.notebook": rel, "nbops.git_sha": git.sha,
            "nbops.git_branch": git.branch, "nbops.version": __version__,
            "mlflow.source.name": rel, "mlflow.source.git.commit": git.sha, "mlflow.user": who_ran(),
            orphans.OWNER_TAG: orphans.owner(), orphans.HEARTBEAT_TAG: str(int(time.time()))}


def sweep_params(grid: dict[str, list], secret_param_names: Any) -> dict[str, str]:
    """A sweep's grid as its parent run's params (`grid.<name>`), secret ones masked."""
    secret = set(secret_names({k: v[0] for k, v in grid.items() if v}, secret_param_names))
    secret |= {k for k, v in grid.items() if any(is_secret_value(x) for x in v)}
    return {f"grid.{k}": MASK if k in secret else param_value(v) for k, v in grid.items()}
