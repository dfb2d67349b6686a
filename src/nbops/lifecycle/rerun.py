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

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import relative_to_repo
from nbops.core.errors import (
    ConfigError,
    DataError,
    RegistryError,
    map_mlflow_errors,
)
from nbops.lifecycle.aliases import promote
from nbops.lifecycle.eligibility import gate_failures
from nbops.lifecycle.lineage import (
    Lineage,
    checkout,
    executable_notebook,
    lineage,
    link_missing_data,
    project_path,
)
from nbops.lifecycle.registry import Registry
from nbops.lifecycle.versions import ModelInfo, VersionInfo, parse_ref

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
                both = m.registered is not None and m.new is not None
                return not (both and math.isnan(m.registered) and math.isnan(m.new))  # type: ignore[arg-type]
            return abs(m.diff) > self.tolerance

        return [m for m in self.metrics if bad(m)]

    @property
    def ok(self) -> bool:
        return self.ran and bool(self.metrics) and not self.mismatches


def _rerun_settings(settings: Settings, tree_root: Path) -> Settings:
    """Run in the worktree, track in the project's store, keep executed notebooks in its runs/."""
    return replace(settings, root=tree_root, tracking_uri=settings.resolved_tracking_uri,
                   runs_dir=str(settings.path(settings.runs_dir).resolve()))


def _notebook(tree_settings: Settings, lin: Lineage):
    """The version's notebook in the worktree, as it ran (see `executable_notebook`)."""
    from nbops.notebook.document import load

    path = tree_settings.root / lin.notebook
    executable_notebook(lin, path)
    if not path.is_file():
        raise RegistryError(f"{lin.notebook} does not exist at {lin.sha[:12]}")
    return load(path)


def _spec(settings: Settings, tree_settings: Settings, lin: Lineage, nb, overrides: dict[str, Any],
          new_data: Path | None = None, replaced: Path | None = None):
    from nbops.run.runner import check_kernels
    from nbops.run.spec import make_spec

    link_missing_data(settings, tree_settings.root, nb.data)
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
        raise DataError(f"--data {data}: no such file")
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
    digest = ""
    if run_id:
        with map_mlflow_errors(what=f"cannot tag the retrain run {run_id}", store=registry.uri,
                               error=RegistryError):
            registry.client.set_tag(run_id, "nbops.retrain_of", f"{name}/{champion.version}")
            digest = registry.client.get_run(run_id).data.tags.get("nbops.data_digest", "")
    if not outcome.ok or not tracked or not tracked.model_version:
        note = tracked.note if tracked else ""
        if not outcome.ok:
            note = f"the notebook failed: {outcome.result.error}"
        return RetrainResult(name, champion, run_id, outcome.ok, None, note or "no model registered",
                             data_digest=digest)
    version = tracked.model_version
    promote(registry, name, version, "challenger", by="nbops retrain")
    new = registry.get(name, version)
    diffs = _diffs(champion.metrics, new.metrics)
    better = _better(info, champion, new)
    promoted, note = False, ""
    reg = settings.registry
    if better and reg.get("auto_promote") and not reg.get("require_approval"):
        failures = gate_failures(settings, info, new)
        if failures:
            note = "not promoted: " + "; ".join(failures)
        else:
            promote(registry, name, version, "champion", by="nbops retrain (auto_promote)")
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
        raise ConfigError(f"--tolerance must not be negative, got {tol}")
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
        with map_mlflow_errors(what=f"cannot read the reproduced run {run_id}", store=registry.uri,
                               error=RegistryError):
            registry.client.set_tag(run_id, "nbops.reproduce_of", f"{version.name}/{version.version}")
            # every MLflow metric of both runs: recorded with nbops.record or logged by mlflow itself
            new_run = registry.client.get_run(run_id)
        new_metrics = dict(new_run.data.metrics)
        # ignored data is linked into the worktree, and the run names it by where the link
        # points (the working tree): back to a project path to compare with the original
        new_digests = {project_path(settings, tree_root, d.dataset.name): d.dataset.digest
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
