"""`nbops sweep`: one notebook over a grid (or random draws) of parameter values.

One parent MLflow run, a child run per point; points run in parallel like `nbops run --jobs`;
a failed point is reported and does not stop the others. The best point by the notebook's
compare metric has its model registered when its gates hold.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import git_info
from nbops.core.errors import ParameterError, TrackingError, first_line, store_errors
from nbops.core.store import check_reachable, mask_uri
from nbops.notebook.document import Notebook, load, split_list
from nbops.notebook.params import coerce, parse_assignments, resolve
from nbops.notebook.scraps import split_metrics
from nbops.run.executors import local_execute
from nbops.run.runner import Outcome, run_specs
from nbops.run.spec import make_spec
from nbops.run.tracking import Registrar


@dataclass(frozen=True)
class SweepResult:
    notebook: Notebook
    points: list[dict[str, Any]]
    outcomes: list[Outcome]  # in point order
    parent_run_id: str | None
    best: int | None  # index of the best successful point
    metric: str | None
    model_name: str | None = None
    model_version: str | None = None
    note: str = ""

    def ranked(self) -> list[int]:
        """Point indices, best first by the compare metric; failures and missing values last."""
        def key(i):
            value = split_metrics(self.outcomes[i].result.records)[0].get(self.metric) if self.metric else None
            if not self.outcomes[i].ok or value is None or math.isnan(value):
                return (1, 0.0)
            higher = self.notebook.model.higher_is_better if self.notebook.model else True
            return (0, -value if higher else value)
        return sorted(range(len(self.points)), key=key)


def parse_grid(notebook: Notebook, items: list[str], from_file: dict[str, Any]) -> dict[str, list]:
    """Typed value lists per parameter, from `-p NAME=V1,V2` and a grid file (lists)."""
    raw: dict[str, list] = {k: (v if isinstance(v, list) else [v]) for k, v in from_file.items()}
    raw.update({k: split_list(v) for k, v in parse_assignments(items).items()})  # 1,[2,3]: two values
    if not raw:
        raise ParameterError("a sweep needs values", hint="e.g. nbops sweep NB -p C=0.1,1,10 -p seed=1,2")
    resolve(notebook, {k: v[0] for k, v in raw.items() if v})  # unknown names: did-you-mean
    grid = {}
    for name, values in raw.items():
        if not values:
            raise ParameterError(f"{notebook.path}: no values given for '{name}'")
        param = notebook.parameter(name)
        assert param is not None  # parse_grid checked the names
        grid[name] = [coerce(param, v, str(notebook.path)) for v in values]
    return grid


def grid_points(grid: dict[str, list], random_k: int | None = None, seed: int = 0) -> list[dict]:
    """Every point of the grid, or RANDOM_K distinct ones drawn without building the grid (three
    axes of 1,000 values are 10^9 points). The draw picks the same points as sampling the built
    grid would: indices into the product, in its order."""
    sizes = [len(v) for v in grid.values()]
    total = math.prod(sizes)
    if random_k is None or random_k >= total:
        return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    points = []
    for index in random.Random(seed).sample(range(total), random_k):
        combo = []
        for values, size in zip(reversed(list(grid.values())), reversed(sizes), strict=True):
            index, i = divmod(index, size)
            combo.append(values[i])
        points.append(dict(zip(grid, reversed(combo), strict=True)))
    return points


def compare_metric(notebook: Notebook) -> str | None:
    model = notebook.model
    if model and model.compare:
        return model.compare
    return model.gates[0].metric if model and model.gates else None


def run_sweep(settings: Settings, path: str | Path, grid: dict[str, list], random_k: int | None = None,
              seed: int = 0, jobs: int = 1, registrar: Registrar | None = None, track: bool = True,
              debug: bool = False, progress=None, executor=local_execute) -> SweepResult:
    notebook = load(path)
    points = grid_points(grid, random_k, seed)
    specs = [make_spec(settings, notebook, point) for point in points]
    metric = compare_metric(notebook)
    if not track:
        outcomes = run_specs(settings, specs, track=False, debug=debug, jobs=jobs, progress=progress,
                             executor=executor)
        result = SweepResult(notebook, points, outcomes, None, None, metric)
        return _with_best(result)
    from nbops.run.tracking import Tracker

    check_reachable(settings.resolved_tracking_uri)  # a server away: one line, before mlflow is imported
    tracker = Tracker(settings)  # the points register nothing; the best one may, below
    parent = tracker.start_sweep(notebook.path, git_info(settings.root), grid)
    try:
        outcomes = run_specs(settings, specs, debug=debug, jobs=jobs, tracker=tracker,
                             parent_run_id=parent.run_id, progress=progress, executor=executor)
    except BaseException:
        tracker.abort(parent)
        raise
    result = _with_best(SweepResult(notebook, points, outcomes, parent.run_id, None, metric))
    best = result.outcomes[result.best] if result.best is not None else None
    best_run = best.tracked if best else None
    best_metrics = split_metrics(best.result.records)[0] if best else {}
    try:
        tracker.finish_sweep(parent, any(o.ok for o in outcomes), best_run.run_id if best_run else None,
                             best_metrics)
    except Exception as exc:  # noqa: BLE001 - not mapped: ends the parent whatever failed, re-raised unless store_errors()
        tracker.abort(parent, "FAILED")  # whatever failed (a bug too), the parent must not stay RUNNING
        if not isinstance(exc, store_errors()):
            raise
        if any(o.unrecorded for o in outcomes):  # the server went away mid-sweep: the points are
            # in the spool (`nbops sync`), and the parent is ended by the orphan check once it is back
            return replace(result, note=f"the sweep's run was not ended: {mask_uri(first_line(exc))}")
        reason = mask_uri(first_line(exc))
        raise TrackingError(f"logging the sweep of {notebook.path} to MLflow failed: {reason}") from None
    if registrar is None or best_run is None:
        note = "registration off (--no-register)" if best_run else "no successful point"
        return replace(result, note=note)
    name, version, note = registrar(tracker.client, tracker.uri, best_run.run_id, notebook.model)
    return replace(result, model_name=name, model_version=version, note=note)


def _with_best(result: SweepResult) -> SweepResult:
    ranked = result.ranked()
    first = ranked[0] if ranked else None
    ok = first is not None and result.outcomes[first].ok
    if ok and first is not None and result.metric:
        value = split_metrics(result.outcomes[first].result.records)[0].get(result.metric)
        ok = value is not None and not math.isnan(value)
    return replace(result, best=first if ok else None)
