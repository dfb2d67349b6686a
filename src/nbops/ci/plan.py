"""`nbops plan`: which notebooks a change affects, why, and on which CI runner they run.

A notebook runs when its file changed, when a `src/` module it imports (directly or through
other `src/` modules) changed, or when a data file it declares changed. A notebook whose
fingerprint (stripped source, parameters, imported src modules, data digests) already has a
successful run in MLflow is skipped as cached: its result is already there. A pipeline notebook
(`metadata.nbops.needs`) also runs when a notebook it needs runs, and its fingerprint includes
theirs; the entries come upstream first, each naming the entries it runs after (`needs`).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nbops.core.config import DEFAULT_GITLAB_RUNNERS, Settings
from nbops.core.context import relative_to_repo
from nbops.core.errors import ConfigError, GitError
from nbops.notebook.document import load
from nbops.pipeline.graph import Graph
from nbops.run.spec import RunSpec, make_spec


@dataclass(frozen=True)
class PlanEntry:
    notebook: str  # repo-relative path
    reason: str
    runs_on: list[str] | str  # GitHub runs-on; GitLab tags
    gpu: int
    timeout_minutes: int
    fingerprint: str  # a pipeline notebook's includes its upstreams' (pipeline/fingerprint.py)
    needs: list[str] = field(default_factory=list)  # the entries of this plan it runs after


@dataclass(frozen=True)
class Plan:
    run: list[PlanEntry]
    cached: list[tuple[PlanEntry, str]]  # entry, id of the run that already has its result
    # [tool.nbops.runners.gitlab]: the child pipeline's tags and images by hardware
    gitlab: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GITLAB_RUNNERS))


def changed_files(root: Path, base: str, head: str | None) -> set[str]:
    """Paths that differ between base and head (head None: the working tree)."""
    # --relative: paths from the project root, which may sit below the git top level
    args = ["git", "diff", "--name-only", "--no-renames", "--relative", base] + ([head] if head else [])
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GitError(f"git diff against '{base}' failed: {done.stderr.strip()[:200]}",
                         hint="is the ref fetched? in CI use a checkout with fetch-depth: 0")
    return {line for line in done.stdout.splitlines() if line}


def notebooks_in(settings: Settings) -> list[Path]:
    folder = settings.path(settings.notebooks_dir)
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _labels(settings: Settings, gpu: int) -> list[str] | str:
    return settings.runners["gpu" if gpu else "cpu"]


def _reasons(spec: RunSpec, rel: str, changed: set[str]) -> list[str]:
    reasons = [f"{rel} changed"] if rel in changed else []
    for path in sorted(spec.inputs):
        if path in changed:
            kind = "data" if path in spec.notebook.data else "imports"
            reasons.append(f"{kind} {path} changed")
    return reasons


def _successful_runs_sqlite(db: Path, fingerprints: list[str]) -> dict[str, str] | None:
    """The embedded store read directly (read-only, core/sqlite_store.py through core/mlflow_db.py's
    check): `import mlflow` alone costs ~2.3 s, more than the whole answer. None when the store
    fails the check or cannot be read: ask MLflow instead."""
    from nbops.core.mlflow_db import Unavailable, client_only
    from nbops.core.sqlite_store import SqliteReader

    if client_only():
        return None
    try:
        return SqliteReader(str(db)).finished_runs(fingerprints)
    except Unavailable:
        return None


def _successful_runs(settings: Settings, fingerprints: list[str]) -> dict[str, str]:
    """fingerprint -> run id of a FINISHED run with it (review runs do not count)."""
    if not fingerprints:
        return {}
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.exists():
            return {}  # no store yet: nothing is cached (and do not create one)
        fast = _successful_runs_sqlite(db, fingerprints)
        if fast is not None:
            return fast
    return _successful_runs_mlflow(uri, fingerprints)


def _successful_runs_mlflow(uri: str, fingerprints: list[str]) -> dict[str, str]:
    from nbops.core.store import bounded_retries, check_reachable, mask_uri, mlflow_errors

    # a server that is down, stalled or wants a login: one line within seconds, not MLflow's
    # minutes of retries (`nbops plan` is the first step of every CI pipeline)
    bounded_retries()
    check_reachable(uri)
    from mlflow.tracking import MlflowClient

    with mlflow_errors(f"cannot read the cached runs from {mask_uri(uri)}"):
        return _search(MlflowClient(uri), fingerprints)


def _search(client: Any, fingerprints: list[str]) -> dict[str, str]:
    from nbops.core.store import all_experiment_ids

    exps = all_experiment_ids(client)  # a team's store has more than one page of experiments
    found: dict[str, str] = {}
    for fingerprint in dict.fromkeys(fingerprints) if exps else ():  # MLflow has no IN for tags
        runs = client.search_runs(
            exps, filter_string=f"tags.`nbops.fingerprint` = '{fingerprint}' and attributes.status = 'FINISHED'",
            max_results=20,
        )
        ours = [r for r in runs if r.data.tags.get("nbops.review") != "true"]
        if ours:
            found[fingerprint] = ours[0].info.run_id
    return found


def make_plan(settings: Settings, base: str | None, head: str | None = None, all_: bool = False,
              use_cache: bool = True) -> Plan:
    if base is None and not all_:
        raise ConfigError("nothing to compare with", hint="pass --base REF (e.g. origin/main) or --all")
    changed = set() if all_ or base is None else changed_files(settings.root, base, head)
    graph, specs = project_graph(settings)
    own: dict[Path, list[str]] = {}  # node key -> why it runs itself
    entries: list[PlanEntry] = []
    for node in graph.nodes:  # upstream notebooks first
        spec = specs[node.key]
        rel = relative_to_repo(spec.notebook.path, settings.root)
        own[node.key] = ["--all"] if all_ else _reasons(spec, rel, changed)
        # a notebook reruns when a notebook it needs (directly or not) reruns
        upstream = [graph.node(k).name for k in sorted(graph.ancestors(node.key)) if own.get(k)]
        reasons = own[node.key] or [f"needs {name}, which changed" for name in upstream]
        if not reasons:
            continue
        nb = spec.notebook
        entries.append(PlanEntry(
            notebook=rel, reason="; ".join(reasons), runs_on=_labels(settings, nb.resources.gpu),
            gpu=nb.resources.gpu, timeout_minutes=max(1, int(-(-(spec.timeout or 3600) // 60))),
            fingerprint=spec.fingerprint,
            needs=[relative_to_repo(graph.node(k).notebook.path, settings.root) for k in node.needs],
        ))
    done = _successful_runs(settings, [e.fingerprint for e in entries]) if use_cache else {}
    run = [e for e in entries if e.fingerprint not in done]
    planned = {e.notebook for e in run}
    return Plan(run=[replace(e, needs=[n for n in e.needs if n in planned]) for e in run],
                cached=[(e, done[e.fingerprint]) for e in entries if e.fingerprint in done],
                gitlab=dict(settings.runners.get("gitlab", DEFAULT_GITLAB_RUNNERS)))


def project_graph(settings: Settings) -> tuple[Graph, dict[Path, RunSpec]]:
    """Every notebook of the project as a graph (checked: a bad `needs` is one line, exit 2),
    and its spec at the defaults, with fingerprints that include its upstreams'."""
    from nbops.pipeline.fingerprint import combined
    from nbops.pipeline.graph import build, key

    notebooks = [load(path) for path in notebooks_in(settings)]
    graph = build(notebooks)
    specs = {key(nb.path): make_spec(settings, nb, {}) for nb in notebooks}
    fingerprints = combined(graph, {k: s.fingerprint for k, s in specs.items()})
    return graph, {k: replace(s, fingerprint=fingerprints[k]) for k, s in specs.items()}


def graph_lines(settings: Settings) -> list[str]:
    """`nbops plan --graph`: the project's notebooks that need or are needed, layer by layer."""
    from nbops.pipeline import render
    from nbops.pipeline.graph import build

    graph = build([load(path) for path in notebooks_in(settings)])
    linked = {k for n in graph.nodes for k in n.needs} | {n.key for n in graph.nodes if n.needs}
    if not linked:
        return ["no pipeline: no notebook declares metadata.nbops.needs"]
    return [line for line, node in zip(render.text(graph, settings.root), _in_layers(graph), strict=True)
            if node in linked]


def _in_layers(graph: Graph) -> list[Path]:
    return [k for layer in graph.layers for k in layer]


def changed_notebooks(settings: Settings, notebooks: list[str], base: str | None, head: str | None,
                      use_cache: bool = True) -> tuple[list[Path], Plan]:
    """`nbops run --changed`: the notebooks `nbops plan` would run (and the plan, for its cached
    entries); giving notebooks as well is an error."""
    if notebooks:
        raise ConfigError("give notebooks or --changed, not both",
                          hint="--changed runs what `nbops plan --base REF` lists")
    plan = make_plan(settings, base, head, use_cache=use_cache)
    return [settings.root / e.notebook for e in plan.run], plan


def as_matrix(plan: Plan) -> dict:
    """A GitHub Actions matrix (`strategy.matrix: ${{ fromJSON(...) }}`)."""
    return {"include": [asdict(e) for e in plan.run]}


def pipelines(plan: Plan) -> list[list[PlanEntry]]:
    """The entries to run, those linked by `needs` together (in the plan's order: upstream first)."""
    linked: dict[str, set[str]] = {e.notebook: set() for e in plan.run}
    for e in plan.run:
        for need in e.needs:
            linked[e.notebook].add(need)
            linked[need].add(e.notebook)
    component: dict[str, str] = {}  # notebook -> the first notebook of its pipeline
    for e in plan.run:
        todo = [e.notebook]
        while todo:
            n = todo.pop()
            if n not in component:
                component[n] = e.notebook
                todo.extend(linked[n])
    out: dict[str, list[PlanEntry]] = {}
    for e in plan.run:
        out.setdefault(component[e.notebook], []).append(e)
    return list(out.values())


def github_matrix(plan: Plan) -> dict:
    """The GitHub matrix: one job per notebook, and one per pipeline (its notebooks, shell-quoted,
    in one `nbops run`, which orders them): a matrix cannot order its jobs."""
    include = []
    for entries in pipelines(plan):
        if len(entries) == 1:
            include.append(asdict(entries[0]))
            continue
        biggest = max(entries, key=lambda e: e.gpu)
        include.append({
            "notebook": shlex.join(e.notebook for e in entries),
            "reason": "; ".join(f"{e.notebook}: {e.reason}" for e in entries),
            "runs_on": biggest.runs_on, "gpu": biggest.gpu,
            "timeout_minutes": sum(e.timeout_minutes for e in entries),
            "fingerprint": entries[-1].fingerprint, "needs": [],
        })
    return {"include": include}


def as_github_output(plan: Plan) -> str:
    """Lines for $GITHUB_OUTPUT: the matrix (a pipeline is one entry) and how many entries it has."""
    matrix = github_matrix(plan)
    return f"matrix={json.dumps(matrix, separators=(',', ':'))}\ncount={len(matrix['include'])}\n"


# The install step of every GitLab job (the parent pipeline's too): the project with the nbops it
# depends on. NBOPS_SPEC (a CI/CD variable) installs another nbops first-hand (a version, a wheel,
# `nbops @ git+https://...`); NBOPS_PIP_ARGS adds pip options (an index, --no-index, ...).
GITLAB_INSTALL = 'python -m pip install $NBOPS_PIP_ARGS ${NBOPS_SPEC:+"$NBOPS_SPEC"} -e .'
GITLAB_PIP_CACHE = "$CI_PROJECT_DIR/.cache/pip"


def gitlab_tags(gitlab: dict[str, Any], gpu: int) -> list[str]:
    """The GitLab runner tags for a notebook's hardware ([tool.nbops.runners.gitlab])."""
    kind = "gpu" if gpu else "cpu"
    return gitlab[kind] if isinstance(gitlab[kind], list) else [gitlab[kind]]


def where(plan: Plan, entry: PlanEntry, fmt: str) -> str:
    """Where ENTRY runs, as the platform of FMT names it (for `nbops plan`'s log lines)."""
    if fmt == "gitlab":
        return f"GitLab runner tags {gitlab_tags(plan.gitlab, entry.gpu) or '(any runner)'}"
    return f"{entry.runs_on}"


def _gitlab_job(gitlab: dict[str, Any], gpu: int, script: list[str]) -> dict[str, Any]:
    """A child job's runner, image, install step and pip cache: a child pipeline inherits none
    of the parent's `default:`."""
    tags = gitlab_tags(gitlab, gpu)
    image = gitlab["gpu_image" if gpu else "image"]
    job: dict[str, Any] = {"stage": "notebooks"}
    if image:
        job["image"] = image
    if tags:
        job["tags"] = list(tags)
    job["variables"] = {"PIP_CACHE_DIR": GITLAB_PIP_CACHE, "NBOPS_REQUIRE_TRACKING_SERVER": "true"}
    job["cache"] = {"key": {"files": ["pyproject.toml"], "prefix": f"pip-{'gpu' if gpu else 'cpu'}"},
                    "paths": [".cache/pip"]}
    job["before_script"] = [GITLAB_INSTALL]
    job["script"] = script
    return job


def as_gitlab_child(plan: Plan, nbops: str = "nbops") -> str:
    """A child-pipeline YAML: one job per notebook on a runner its hardware asks for
    ([tool.nbops.runners.gitlab] tags and images), each installing the project itself."""
    import yaml

    jobs: dict = {"stages": ["notebooks"]}
    for e in plan.run:
        job = _gitlab_job(plan.gitlab, e.gpu, [
            f'echo "running {e.notebook} because: $NBOPS_REASON"',
            f"{nbops} run {shlex.quote(e.notebook)} --output-dir runs",
        ])
        job["variables"]["NBOPS_REASON"] = e.reason
        job["timeout"] = f"{e.timeout_minutes} minutes"
        # a run the server did not take (exit 4) is only in .nbops/spool: kept with the job, for `nbops sync`
        job["artifacts"] = {"when": "always", "paths": ["runs/", ".nbops/spool/"]}
        if e.needs:  # a pipeline: after the jobs of the notebooks it needs (their runs are on the server)
            job["needs"] = [f"run {n}" for n in e.needs]
        jobs[f"run {e.notebook}"] = job
    if not plan.run:  # a child pipeline needs at least one job
        job = _gitlab_job(plan.gitlab, 0, ["echo 'every notebook is up to date'"])
        jobs["nothing to run"] = {k: v for k, v in job.items() if k not in ("cache", "before_script")}
    return yaml.safe_dump(jobs, sort_keys=False)
