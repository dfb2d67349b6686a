"""`nbops run` of a pipeline: notebooks that need others (`metadata.nbops.needs`) run after them.

The graph is checked before anything runs (pipeline/graph.py); each notebook's fingerprint
includes its upstreams' (pipeline/fingerprint.py). Tracked, the pipeline is one parent MLflow run
with a child run per notebook (`mlflow.parentRunId`), all in one experiment (the pipeline's
folder, or --experiment), so the MLflow UI shows them nested. Independent notebooks run in
parallel (`--jobs`, or Ray); a notebook whose upstream failed is skipped, never run on stale
inputs. A needed notebook that was not given (`nbops run --changed` reruns only `evaluate`)
is not run: its newest successful run with its current fingerprint stands in for it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from nbops import __version__
from nbops.core.config import Settings
from nbops.core.context import GitInfo, git_info, relative_to_repo, who_ran
from nbops.core.errors import NotebookError
from nbops.notebook.document import ModelSpec, load
from nbops.pipeline import render
from nbops.pipeline.fingerprint import combined
from nbops.pipeline.graph import Graph, build, declared_needs, key
from nbops.run import orphans
from nbops.run.executors import local_execute
from nbops.run.runner import Outcome, run_specs
from nbops.run.spec import RunSpec, make_spec
from nbops.run.tracking import Registrar


@dataclass(frozen=True)
class PipelinePlan:
    graph: Graph
    specs: list[RunSpec]  # the notebooks given, each after those it needs; fingerprints with upstreams'
    needs: list[tuple[int, ...]]  # per spec: the indices of the given specs it needs
    name: str  # the notebooks' folder relative to the project: the experiment of its runs
    external: dict[Path, RunSpec] = field(default_factory=dict)  # needed, not given: a cached run is used


@dataclass(frozen=True)
class PipelineResult:
    outcomes: list[Outcome]  # in the plan's order
    parent_run_id: str | None
    name: str


def plan_pipeline(settings: Settings, specs: list[RunSpec]) -> PipelinePlan | None:
    """The specs as a pipeline, checked and ordered; None when no notebook needs another."""
    notebooks = [s.notebook for s in specs]
    if not any(declared_needs(nb) for nb in notebooks):
        return None
    graph = build(notebooks, find=load)
    external = {n.key: make_spec(settings, n.notebook, {}) for n in graph.nodes if n.external}
    own = {key(s.notebook.path): s.fingerprint for s in [*specs, *external.values()]}
    fingerprints = combined(graph, own)
    given = {key(s.notebook.path): replace(s, fingerprint=fingerprints[key(s.notebook.path)]) for s in specs}
    external = {k: replace(s, fingerprint=fingerprints[k]) for k, s in external.items()}
    ordered = [given[n.key] for n in graph.nodes if not n.external]
    index = {key(s.notebook.path): i for i, s in enumerate(ordered)}
    needs = [tuple(index[k] for k in graph.node(s.notebook.path).needs if k in index) for s in ordered]
    return PipelinePlan(graph, ordered, needs, _name(settings, ordered), external)


def _name(settings: Settings, specs: list[RunSpec]) -> str:
    folders = [os.path.dirname(relative_to_repo(s.notebook.path, settings.root)) for s in specs]
    try:
        common = os.path.commonpath(folders) if all(folders) else ""
    except ValueError:  # a notebook outside the project (an absolute path) beside ones inside
        common = ""
    return common.replace(os.sep, "/") or "pipeline"


def run_pipeline(settings: Settings, plan: PipelinePlan, track: bool = True, debug: bool = False,
                 jobs: int = 1, progress: Any = None, executor: Any = local_execute,
                 registrar: Registrar | None = None, experiment: str | None = None) -> PipelineResult:
    if not track:
        for spec in plan.specs:
            for k in plan.graph.node(spec.notebook.path).needs:
                if k in plan.external:
                    _no_run_for(plan, spec, k, "with --no-track no earlier run is used")
        outcomes = run_specs(settings, plan.specs, track=False, debug=debug, jobs=jobs,
                             progress=progress, executor=executor, needs=plan.needs)
        return PipelineResult(outcomes, None, plan.name)
    from nbops.core.store import check_reachable
    from nbops.run.tracking import Tracker

    check_reachable(settings.resolved_tracking_uri)  # a server away: one line, before mlflow is imported
    gates = PipelineGates(registrar, {n.name for n in plan.graph.nodes}) if registrar is not None else None
    tracker = Tracker(settings, experiment=experiment or plan.name, registrar=gates)
    specs = _with_external_runs(plan, tracker)  # before any kernel starts: a missing one is an error
    git = git_info(settings.root)
    parent = _start_parent(tracker, plan, git)
    try:
        outcomes = run_specs(settings, specs, debug=debug, jobs=jobs, tracker=tracker,
                             parent_run_id=parent.run_id, progress=progress, executor=executor,
                             needs=plan.needs)
    except BaseException:
        tracker.abort(parent)
        raise
    try:
        if gates is not None and gates.deferred:  # may fail on the store, or be interrupted
            outcomes = gates.register(tracker, outcomes)
        tracker.heartbeat.remove(parent.run_id)
        ok = all(o.ok for o in outcomes)
        children = {o.result.spec.notebook.stem: o.tracked.run_id for o in outcomes if o.tracked}
        tracker.store.set_tags(parent.run_id, {"nbops.pipeline.children": json.dumps(children)[:5000]})
        tracker.store.set_terminated(parent.run_id, "FINISHED" if ok else "FAILED")
    except BaseException:
        tracker.abort(parent, "FAILED")  # whatever failed, the parent must not stay RUNNING
        raise
    return PipelineResult(outcomes, parent.run_id, plan.name)


class PipelineGates:
    """The registrar of a pipeline's runs: a model whose gates name another notebook's metric
    (`evaluate.test_accuracy >= 0.9` in train's metadata.nbops.model.gates) is registered once
    the pipeline is done, with those metrics logged on its run under the names the gates use."""

    def __init__(self, registrar: Registrar, names: set[str]):
        self.registrar, self.names = registrar, names
        self.deferred: dict[str, ModelSpec] = {}  # run id -> its model, registered at the end

    def _pipeline_metrics(self, spec: ModelSpec) -> list[tuple[str, str]]:
        """(notebook, metric) of each gate naming a metric of a notebook of the pipeline."""
        parts = [g.metric.partition(".") for g in spec.gates]
        return [(node, metric) for node, dot, metric in parts if dot and metric and node in self.names]

    def __call__(self, client: Any, uri: str, run_id: str,
                 spec: ModelSpec | None) -> tuple[str | None, str | None, str]:
        if spec is not None and self._pipeline_metrics(spec):
            self.deferred[run_id] = spec
            return spec.name, None, "to be registered once the pipeline is done"
        return self.registrar(client, uri, run_id, spec)

    def register(self, tracker: Any, outcomes: list[Outcome]) -> list[Outcome]:
        from nbops.notebook.scraps import split_metrics

        recorded = {o.result.spec.notebook.stem: split_metrics(o.result.records)[0]
                    for o in outcomes if o.ok}
        out = []
        for o in outcomes:
            tracked = o.tracked
            spec = self.deferred.get(tracked.run_id) if tracked is not None else None
            if tracked is None or spec is None:
                out.append(o)
                continue
            found = {f"{node}.{metric}": recorded[node][metric] for node, metric in self._pipeline_metrics(spec)
                     if metric in recorded.get(node, {})}
            if found:  # a notebook that failed or was skipped recorded nothing: its gate fails
                tracker.store.log_metrics(tracked.run_id, found, int(time.time() * 1000))
            name, version, note = self.registrar(tracker.client, tracker.uri, tracked.run_id, spec)
            out.append(replace(o, tracked=replace(tracked, model_name=name, model_version=version, note=note)))
        return out


def _no_run_for(plan: PipelinePlan, spec: RunSpec, missing: Path, why: str) -> NoReturn:
    node = plan.graph.node(missing)
    raise NotebookError(
        f"{spec.notebook.path}: needs '{node.name}', which was not given and has no successful run "
        f"with its current fingerprint ({why})",
        hint=f"run it too: nbops run {node.notebook.path} {spec.notebook.path}")


def _with_external_runs(plan: PipelinePlan, tracker: Any) -> list[RunSpec]:
    """Each needed notebook that was not given: its newest successful run with its current
    fingerprint (upstreams' included) stands in for it, handed to the notebooks that need it."""
    runs: dict[Path, tuple[str, str]] = {}
    out = []
    for spec in plan.specs:
        for k in plan.graph.node(spec.notebook.path).needs:
            if k in plan.external and k not in runs:
                run_id = newest_successful_run(tracker.client, plan.external[k].fingerprint)
                if run_id is None:
                    _no_run_for(plan, spec, k, "nothing to read its results from")
                runs[k] = (plan.external[k].notebook.stem, run_id)
        ups = tuple(runs[k] for k in plan.graph.node(spec.notebook.path).needs if k in runs)
        out.append(replace(spec, upstream=ups) if ups else spec)
    return out


def newest_successful_run(client: Any, fingerprint: str) -> str | None:
    """The newest FINISHED run with FINGERPRINT (review runs do not count), by MLflow's client."""
    from nbops.core.errors import map_mlflow_errors
    from nbops.core.store import all_experiment_ids

    with map_mlflow_errors(what="cannot look for an upstream's earlier run"):
        exps = all_experiment_ids(client)
        if not exps:
            return None
        runs = client.search_runs(
            exps, filter_string=f"tags.`nbops.fingerprint` = '{fingerprint}' and attributes.status = 'FINISHED'",
            max_results=20, order_by=["attributes.start_time DESC"])
    ours = [r for r in runs if r.data.tags.get("nbops.review") != "true"]
    return ours[0].info.run_id if ours else None


def _start_parent(tracker: Any, plan: PipelinePlan, git: GitInfo) -> Any:
    """The pipeline's parent run: its notebooks, its graph; each notebook's run is its child."""
    from nbops.run.tracking import StartedRun

    root = tracker.settings.root
    notebooks = [relative_to_repo(s.notebook.path, root) for s in plan.specs]
    tags = {"nbops.pipeline": "true", "nbops.pipeline.notebooks": json.dumps(notebooks)[:5000],
            "nbops.pipeline.graph": "\n".join(render.text(plan.graph, root))[:5000],
            "nbops.git_sha": git.sha, "nbops.git_branch": git.branch, "nbops.version": __version__,
            "mlflow.source.name": plan.name, "mlflow.source.git.commit": git.sha, "mlflow.user": who_ran(),
            orphans.OWNER_TAG: orphans.owner(), orphans.HEARTBEAT_TAG: str(int(time.time()))}
    exp_id = tracker._experiment_id(tracker.experiment or plan.name)
    run_id = tracker.store.create_run(exp_id, tags, f"pipeline {plan.name}", int(time.time() * 1000))
    tracker.heartbeat.add(run_id)
    return StartedRun(run_id, exp_id, tags)
