"""What produced a registered version (its run's notebook, git sha, parameters, data digests), and
a temporary git worktree at that sha to run it again in."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import (
    GitError,
    NbopsError,
    NotFound,
    RegistryError,
    TrackingError,
    map_mlflow_errors,
)
from nbops.core.store import QUIET_MLFLOW, mlflow_settings
from nbops.lifecycle.registry import Registry
from nbops.lifecycle.versions import VersionInfo


@dataclass(frozen=True)
class Lineage:
    """What produced a version: its run's notebook (repo-relative), sha, parameters, data digests."""

    version: VersionInfo
    notebook: str
    sha: str
    dirty: bool
    parameters: dict[str, Any]  # as papermill injected them (typed)
    executed: dict | None  # the executed notebook, when the run logged it
    run_metrics: dict[str, float]
    data_digests: dict[str, str]  # dataset name -> digest, as logged


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout.strip()


def lineage(registry: Registry, version: VersionInfo) -> Lineage:
    if not version.run_id:
        raise RegistryError(f"{version.name} version {version.version} has no run to re-run",
                            hint="only versions registered from a run can be retrained or reproduced")
    client = registry.client
    try:
        with map_mlflow_errors(what=f"cannot read the run {version.run_id} of {version.name} "
                                    f"v{version.version}", store=registry.uri, error=RegistryError):
            run = client.get_run(version.run_id)
    except NotFound:
        raise RegistryError(f"the run {version.run_id} of {version.name} v{version.version} is gone") from None
    tags = run.data.tags
    notebook = tags.get("nbops.notebook") or version.notebook
    sha = tags.get("nbops.git_sha") or version.git_sha
    if not notebook or not sha or sha == "unknown":
        raise RegistryError(
            f"{version.name} v{version.version}: its run records no notebook or git sha",
            hint="versions registered by `nbops run` in a git repository carry both")
    executed = None
    mlflow_settings(QUIET_MLFLOW)  # no progress bar on stderr for one small file
    with tempfile.TemporaryDirectory(prefix="nbops-artifacts-") as tmp:
        try:
            with map_mlflow_errors(what="the executed notebook", store=registry.uri):
                names = [a.path for a in client.list_artifacts(version.run_id, "notebook")
                         if a.path.endswith(".ipynb")]
                if names:
                    local = client.download_artifacts(version.run_id, names[0], tmp)
            if names:
                executed = json.loads(Path(local).read_text(encoding="utf-8"))
        except (TrackingError, OSError, json.JSONDecodeError):
            executed = None  # fall back to the notebook at the sha and the logged params
    if executed is not None:
        parameters = dict(executed.get("metadata", {}).get("papermill", {}).get("parameters") or {})
    else:  # logged as text; make_spec types them against the notebook's defaults, like -p
        parameters = dict(run.data.params)
    digests = {d.dataset.name: d.dataset.digest for d in (run.inputs.dataset_inputs if run.inputs else [])}
    return Lineage(version, notebook, sha, tags.get("nbops.git_dirty") == "true", parameters, executed,
                   dict(run.data.metrics), digests)


@contextmanager
def checkout(settings: Settings, sha: str):
    """The project as it was at SHA, in a temporary worktree; yields the project root inside it."""
    root = settings.root.resolve()
    top = Path(_git(root, "rev-parse", "--show-toplevel")).resolve()
    try:
        _git(root, "cat-file", "-e", f"{sha}^{{commit}}")
    except NbopsError:
        raise RegistryError(f"git commit {sha[:12]} is not in this repository",
                            hint="git fetch the branch it was trained on (or unshallow the clone)") from None
    tmp = Path(tempfile.mkdtemp(prefix="nbops-worktree-"))
    tree = tmp / "tree"
    try:
        _git(top, "worktree", "add", "--detach", "--quiet", str(tree), sha)
        yield tree / root.relative_to(top)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=top,
                       capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True, check=False)


def executable_notebook(lin: Lineage, path: Path) -> None:
    """The notebook as it ran. From a clean tree that is the file at the sha (papermill injects
    the logged parameters again); rewriting it would make the re-run look dirty. From a dirty
    tree only the executed notebook knows the code: written back as source, no injected cell,
    no outputs."""
    if lin.executed is None or (not lin.dirty and path.is_file()):
        return
    nb = json.loads(json.dumps(lin.executed))
    cells = []
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        meta = cell.get("metadata", {})
        meta.pop("papermill", None)
        meta.pop("execution", None)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    nb["cells"] = cells
    nb.get("metadata", {}).pop("papermill", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def link_missing_data(settings: Settings, tree_root: Path, declared: tuple[str, ...]) -> None:
    """Data files git does not hold (ignored): link the working tree's copies into the worktree."""
    for rel in declared:
        target = tree_root / rel
        source = settings.path(rel)
        if not target.exists() and source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())


def project_path(settings: Settings, tree_root: Path, name: str) -> str:
    path = Path(name)
    if not path.is_absolute():
        return name
    for root in (settings.root, tree_root):
        if path.is_relative_to(root.resolve()):
            return path.relative_to(root.resolve()).as_posix()
    return name
