"""`nbops retrain` and `nbops reproduce`: run a registered version's notebook again.

Both rebuild what produced the version: the project's files at the git sha recorded on the version
(a temporary `git worktree`, so `src/` modules are those of that commit too), the notebook exactly
as it was executed (the executed notebook logged with the run, its injected-parameters cell and
outputs removed), and the parameter values papermill recorded in it. Data files the notebook
declares that git does not hold (ignored data) are linked in from the working tree.

- `retrain` swaps the notebook's data parameter for new data, registers the result (when its gates
  hold) and makes it `challenger`; it promotes it to `champion` only when [tool.nbops.registry]
  says `auto_promote = true`, approval is not required, and it beats the champion.
- `reproduce` runs with the logged parameters, registers nothing, and compares every metric with
  the registered run's: a difference above the tolerance fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import relative_to_repo
from nbops.core.errors import ConfigError, NbopsError, RegistryError
from nbops.lifecycle.registry import ModelInfo, Registry, VersionInfo, parse_ref

_DATA_PARAM = re.compile(r"^(data|dataset|input|train|training|csv)(_?(path|file|csv|uri))?$|"
                         r"^(data|input|train|training|csv)_?\w*_(path|file)$")


@dataclass(frozen=True)
class MetricDiff:
    name: str
    registered: float | None
    new: float | None

    @property
    def diff(self) -> float | None:
        if self.registered is None or self.new is None:
            return None
        return self.new - self.registered


@dataclass(frozen=True)
class RetrainResult:
    name: str
    champion: VersionInfo
    run_id: str
    ran: bool  # the notebook ran to the end
    version: str | None  # the new version, when registered
    note: str
    metrics: list[MetricDiff] = field(default_factory=list)  # champion -> challenger
    compare: str = ""
    better: bool | None = None
    promoted: bool = False
    data_digest: str = ""

    @property
    def ok(self) -> bool:
        """A challenger was registered (a run whose gates failed registers nothing: exit 1)."""
        return self.ran and self.version is not None


@dataclass(frozen=True)
class ReproduceResult:
    version: VersionInfo
    run_id: str
    ran: bool
    tolerance: float
    metrics: list[MetricDiff] = field(default_factory=list)
    note: str = ""

    @property
    def mismatches(self) -> list[MetricDiff]:
        def bad(m: MetricDiff) -> bool:
            if m.diff is None:
                return True
            if math.isnan(m.diff):  # NaN on both sides reproduces NaN
                return not (math.isnan(m.registered) and math.isnan(m.new))
            return abs(m.diff) > self.tolerance

        return [m for m in self.metrics if bad(m)]

    @property
    def ok(self) -> bool:
        return self.ran and bool(self.metrics) and not self.mismatches


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
        raise NbopsError(f"git {' '.join(args)} failed: {lines[-1] if lines else done.returncode}")
    return done.stdout.strip()


def lineage(registry: Registry, version: VersionInfo) -> Lineage:
    from mlflow.exceptions import MlflowException

    if not version.run_id:
        raise RegistryError(f"{version.name} version {version.version} has no run to re-run",
                            hint="only versions registered from a run can be retrained or reproduced")
    client = registry.client
    try:
        run = client.get_run(version.run_id)
    except MlflowException:
        raise RegistryError(f"the run {version.run_id} of {version.name} v{version.version} is gone") from None
    tags = run.data.tags
    notebook = tags.get("nbops.notebook") or version.notebook
    sha = tags.get("nbops.git_sha") or version.git_sha
    if not notebook or not sha or sha == "unknown":
        raise RegistryError(
            f"{version.name} v{version.version}: its run records no notebook or git sha",
            hint="versions registered by `nbops run` in a git repository carry both")
    executed = None
    # MLflow draws a progress bar on stderr for every download; one small file needs none
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="nbops-artifacts-") as tmp:
        try:
            names = [a.path for a in client.list_artifacts(version.run_id, "notebook")
                     if a.path.endswith(".ipynb")]
            if names:
                local = client.download_artifacts(version.run_id, names[0], tmp)
                executed = json.loads(Path(local).read_text(encoding="utf-8"))
        except (MlflowException, OSError, json.JSONDecodeError):
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


def _executable_notebook(lin: Lineage, path: Path) -> None:
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


def _link_missing_data(settings: Settings, tree_root: Path, declared: tuple[str, ...]) -> None:
    """Data files git does not hold (ignored): link the working tree's copies into the worktree."""
    for rel in declared:
        target = tree_root / rel
        source = settings.path(rel)
        if not target.exists() and source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.resolve())


def _project_path(settings: Settings, tree_root: Path, name: str) -> str:
    path = Path(name)
    if not path.is_absolute():
        return name
    for root in (settings.root, tree_root):
        if path.is_relative_to(root.resolve()):
            return path.relative_to(root.resolve()).as_posix()
    return name


def _rerun_settings(settings: Settings, tree_root: Path) -> Settings:
    """Run in the worktree, track in the project's store, keep executed notebooks in its runs/."""
    return replace(settings, root=tree_root, tracking_uri=settings.resolved_tracking_uri,
                   runs_dir=str(settings.path(settings.runs_dir).resolve()))


def _notebook(tree_settings: Settings, lin: Lineage):
    """The version's notebook in the worktree, as it ran (see `_executable_notebook`)."""
    from nbops.notebook.document import load

    path = tree_settings.root / lin.notebook
    _executable_notebook(lin, path)
    if not path.is_file():
        raise RegistryError(f"{lin.notebook} does not exist at {lin.sha[:12]}")
    return load(path)


def _spec(settings: Settings, tree_settings: Settings, lin: Lineage, nb, overrides: dict[str, Any],
          new_data: Path | None = None, replaced: Path | None = None):
    from nbops.run.runner import check_kernels
    from nbops.run.spec import make_spec

    _link_missing_data(settings, tree_settings.root, nb.data)
    known = {p.name for p in nb.parameters}
    spec = make_spec(tree_settings, nb, {k: v for k, v in overrides.items() if k in known})
    if new_data is not None:
        from nbops.notebook.inputs import file_digest, inputs_fingerprint

        # compared without resolving links: an ignored data file is a link into the working tree
        keep = tuple(p for p in spec.data_files
                     if replaced is None or os.path.abspath(p) != os.path.abspath(replaced))
        data_keys = {relative_to_repo(p, tree_settings.root) for p in spec.data_files}
        inputs = {k: v for k, v in spec.inputs.items() if k not in data_keys}
        inputs.update({relative_to_repo(p, tree_settings.root): file_digest(p) for p in keep})
        inputs[relative_to_repo(new_data, tree_settings.root)] = file_digest(new_data)
        fingerprint = inputs_fingerprint(spec.notebook.fingerprint, spec.values, inputs)
        spec = replace(spec, data_files=(*keep, new_data), inputs=inputs, fingerprint=fingerprint)
    check_kernels([spec])
    return spec


def _run(tree_settings: Settings, spec, register: bool, quiet: bool):
    from nbops.lifecycle.registration import Registrar
    from nbops.run.progress import make_progress
    from nbops.run.runner import run_specs
    from nbops.run.tracking import Tracker

    # an old commit's notebook must not rewrite the model's compare metric and gates
    registrar = Registrar(describe_model=False) if register else None
    tracker = Tracker(tree_settings, registrar=registrar)
    progress = make_progress(quiet=quiet)
    try:
        return run_specs(tree_settings, [spec], registrar=registrar, progress=progress,
                         tracker=tracker)[0]
    finally:
        progress.close()


def _diffs(old: dict[str, float], new: dict[str, float]) -> list[MetricDiff]:
    return [MetricDiff(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))]


def find_data_param(lin: Lineage, notebook_params: dict[str, Any], given: str | None) -> str:
    """The parameter that takes the training data's path: --data-param, or the one string
    parameter named like data_path / csv_path / train_file."""
    if given:
        if given not in notebook_params:
            raise RegistryError(f"{lin.notebook} has no parameter '{given}'",
                                hint="parameters: " + ", ".join(notebook_params))
        return given
    candidates = [n for n, v in notebook_params.items() if isinstance(v, str) and _DATA_PARAM.match(n)]
    paths = [n for n in candidates if n.endswith(("_path", "_file", "path", "file"))]
    for group in (paths, candidates):  # `data_path` over `dataset` (a name, not a file)
        if len(group) == 1:
            return group[0]
    raise RegistryError(
        f"cannot tell which parameter of {lin.notebook} takes the data"
        + (f" ({', '.join(candidates)})" if candidates else ""),
        hint="name it with --data-param NAME")


def retrain_target(ref: str, data_param: str | None, retrain: bool) -> str:
    """The model `nbops monitor REF --retrain` retrains: always the champion of REF's model,
    checked before monitoring starts."""
    if not retrain:
        if data_param:
            raise ConfigError("--data-param goes with --retrain", hint="add --retrain or drop --data-param")
        return ref
    name, alias, version = parse_ref(ref)
    if version or alias not in (None, "champion"):
        raise ConfigError(f"--retrain retrains the champion, not {ref}",
                          hint=f"nbops monitor {name} ... --retrain")
    return name


def retrain(settings: Settings, name: str, data: Path, param: str | None = None,
            quiet: bool = False) -> RetrainResult:
    if "@" in name or "/" in name:
        raise RegistryError(f"retrain takes a model name, got '{name}'",
                            hint="it retrains the champion: nbops retrain NAME --data FILE")
    data = data.resolve()
    if not data.is_file():
        raise NbopsError(f"--data {data}: no such file")
    registry = Registry(settings)
    info = registry.model(name)
    champion = registry.resolve(f"{name}@champion")
    lin = lineage(registry, champion)
    with checkout(settings, lin.sha) as tree_root:
        tree_settings = _rerun_settings(settings, tree_root)
        nb = _notebook(tree_settings, lin)
        values = {p.name: p.default for p in nb.parameters}
        values.update({k: v for k, v in lin.parameters.items() if k in values})
        data_param = find_data_param(lin, values, param)
        old = values.get(data_param)
        replaced = Path(os.path.abspath(nb.path.parent / old)) if isinstance(old, str) and old else None
        overrides = {**lin.parameters, data_param: str(data)}
        spec = _spec(settings, tree_settings, lin, nb, overrides, new_data=data, replaced=replaced)
        outcome = _run(tree_settings, spec, register=True, quiet=quiet)
    tracked = outcome.tracked
    run_id = tracked.run_id if tracked else ""
    if run_id:
        registry.client.set_tag(run_id, "nbops.retrain_of", f"{name}/{champion.version}")
    digest = registry.client.get_run(run_id).data.tags.get("nbops.data_digest", "") if run_id else ""
    if not outcome.ok or not tracked or not tracked.model_version:
        note = tracked.note if tracked else ""
        if not outcome.ok:
            note = f"the notebook failed: {outcome.result.error}"
        return RetrainResult(name, champion, run_id, outcome.ok, None, note or "no model registered",
                             data_digest=digest)
    version = tracked.model_version
    registry.promote(name, version, "challenger", by="nbops retrain")
    new = registry.get(name, version)
    diffs = _diffs(champion.metrics, new.metrics)
    better = _better(info, champion, new)
    promoted, note = False, ""
    reg = settings.registry
    if better and reg.get("auto_promote") and not reg.get("require_approval"):
        failures = registry.gate_failures(info, new)
        if failures:
            note = "not promoted: " + "; ".join(failures)
        else:
            registry.promote(name, version, "champion", by="nbops retrain (auto_promote)")
            promoted = True
    elif reg.get("require_approval"):
        note = (f"promotion waits for approval: nbops models approve {name} {version} --by WHO, "
                f"then nbops models promote {name} {version} --alias champion")
    else:
        note = f"to promote it: nbops models promote {name} {version} --alias champion"
    return RetrainResult(name, champion, run_id, True, version, note, diffs, info.compare, better,
                         promoted, digest)


def _better(info: ModelInfo, old: VersionInfo, new: VersionInfo) -> bool | None:
    if not info.compare:
        return None
    a, b = old.metrics.get(info.compare), new.metrics.get(info.compare)
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return b > a if info.higher_is_better else b < a


def reproduce(settings: Settings, ref: str, tolerance: float | None = None,
              quiet: bool = False) -> ReproduceResult:
    tol = float(settings.monitor.get("reproduce_tolerance", 1e-6) if tolerance is None else tolerance)
    if tol < 0:
        raise NbopsError(f"--tolerance must not be negative, got {tol}")
    registry = Registry(settings)
    version = registry.resolve(ref)
    lin = lineage(registry, version)
    with checkout(settings, lin.sha) as tree_root:
        tree_settings = _rerun_settings(settings, tree_root)
        spec = _spec(settings, tree_settings, lin, _notebook(tree_settings, lin), lin.parameters)
        outcome = _run(tree_settings, spec, register=False, quiet=quiet)
    run_id = outcome.tracked.run_id if outcome.tracked else ""
    new_metrics, new_digests = {}, {}
    if run_id:
        registry.client.set_tag(run_id, "nbops.reproduce_of", f"{version.name}/{version.version}")
        # every MLflow metric of both runs: recorded with nbops.record or logged by mlflow itself
        new_run = registry.client.get_run(run_id)
        new_metrics = dict(new_run.data.metrics)
        # ignored data is linked into the worktree, and the run names it by where the link
        # points (the working tree): back to a project path to compare with the original
        new_digests = {_project_path(settings, tree_root, d.dataset.name): d.dataset.digest
                       for d in (new_run.inputs.dataset_inputs if new_run.inputs else [])}
    notes = [] if outcome.ok else [f"the notebook failed: {outcome.result.error}"]
    if lin.dirty:
        notes.append("the original run had uncommitted changes")
    changed = [name for name, digest in lin.data_digests.items()
               if name in new_digests and new_digests[name] != digest]
    if changed:
        notes.append("data changed since it was trained: " + ", ".join(changed))
    note = "; ".join(notes)
    return ReproduceResult(version, run_id, outcome.ok, tol,
                           _diffs(lin.run_metrics, new_metrics) if outcome.ok else [], note)
