"""`nbops review --run`: execute the changed notebooks at head and compare metrics with base.

Base is the newest successful run of the same notebook at the base commit; failing that, the run
behind the registered `champion` of the notebook's model. Review runs go to an experiment named
for the review and are never registered.
"""

from __future__ import annotations

from nbops.core.config import Settings
from nbops.core.context import relative_to_repo
from nbops.core.errors import NotFound, ReviewError, map_mlflow_errors
from nbops.core.gates import failed_gates
from nbops.core.store import all_experiment_ids
from nbops.notebook.document import ModelSpec
from nbops.notebook.scraps import split_metrics
from nbops.review.changes import NotebookReview, git_output
from nbops.review.markdown import code
from nbops.run.runner import plan_runs, run_specs


def _base_metrics(client, path: str, base_sha: str, model_name: str | None) -> tuple[dict, str]:
    # every experiment, page by page (a team's store has more than one page of them)
    exps = all_experiment_ids(client)
    if exps:
        runs = client.search_runs(
            exps,
            filter_string=(f"tags.`nbops.notebook` = '{path}' and tags.`nbops.git_sha` = '{base_sha}' "
                           "and attributes.status = 'FINISHED'"),
            order_by=["attributes.start_time DESC"], max_results=50,
        )
        # a review run or a sweep point ran other code or other parameters: not the base
        runs = [r for r in runs if r.data.tags.get("nbops.review") != "true"
                and "mlflow.parentRunId" not in r.data.tags]
        if runs:
            return dict(runs[0].data.metrics), f"run {runs[0].info.run_id[:8]} at base"
    if model_name:
        # the store failing is an error (saying "no base run" would mislead); no such model, no
        # champion alias or the champion's run gone is "no base run"
        try:
            with map_mlflow_errors(what=f"cannot read {model_name}@champion", error=ReviewError):
                champion = client.get_registered_model(model_name).aliases.get("champion")
                if champion is None:
                    return {}, "no base run"
                version = client.get_model_version(model_name, champion)
                if version.run_id:
                    return (dict(client.get_run(version.run_id).data.metrics),
                            f"champion {model_name} v{version.version}")
        except NotFound:
            return {}, "no base run"
    return {}, "no base run"


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def direction(name: str, model: ModelSpec | None) -> bool | None:
    """True when a higher NAME is better, False when lower is, None when nothing says: the
    compare metric's direction, else a gate's (`>=` wants higher, `<=` lower)."""
    if model is None:
        return None
    if model.compare == name:
        return model.higher_is_better
    ops = {g.op for g in model.gates if g.metric == name}
    if ops and ops <= {">", ">="}:
        return True
    if ops and ops <= {"<", "<="}:
        return False
    return None


def results_lines(status: str, source: str, head_records: dict, base_metrics: dict,
                  model: ModelSpec | None) -> list[str]:
    """Markdown: the metrics base/head/change (better or worse by the metric's direction), the
    gates at head, and the records that are not metrics (text, lists, NaN), kept apart."""
    head_metrics, others = split_metrics(head_records)
    lines = [f"**Results** (head run {status}; base: {source})", "",
             "| metric | base | head | change |", "|---|---|---|---|"]
    for name in sorted(set(head_metrics) | set(base_metrics)):
        b, h = base_metrics.get(name), head_metrics.get(name)
        higher = direction(name, model)
        change = "–"
        if b is not None and h is not None:
            change = f"{h - b:+.4g}"
            if higher is not None:
                change += " same" if h == b else (" better" if (h > b) == higher else " **worse**")
        label = _cell(name) + (" (compare)" if model and model.compare == name else "")
        if higher is not None:
            label += " ↑" if higher else " ↓"
        lines.append(f"| {label} | {_fmt(b)} | {_fmt(h)} | {change} |")
    if model and model.gates:
        lines.append("")
        failures = failed_gates(model.gates, head_metrics)
        for gate in model.gates:
            why = next((f for f in failures if f.startswith(f"gate '{gate}'")), None)
            lines.append(f"- gate `{gate}`: " + ("holds" if why is None else f"**FAILS** ({why.split(': ', 1)[-1]})"))
    if others:
        lines += ["", "Records that are not metrics (head):"]
        for name, value in sorted(others.items()):
            text = repr(value)
            lines.append(f"- {code(name)}: {code(text if len(text) <= 80 else text[:77] + '...')}")
    return lines


def run_and_compare(settings: Settings, reviews: list[NotebookReview], base: str, head: str) -> dict[str, list[str]]:
    """Markdown lines per notebook path (results_lines)."""
    root = settings.root
    head_sha = git_output(root, "rev-parse", head).strip()
    if head_sha != git_output(root, "rev-parse", "HEAD").strip():
        raise ReviewError("--run executes the checked-out tree, but it is not --head",
                          hint=f"git checkout {head} first")
    base_sha = git_output(root, "rev-parse", base).strip()
    paths = [r.change.path for r in reviews
             if r.change.head is not None and not r.change.error and (root / r.change.path).is_file()]
    if not paths:
        return {}
    specs = plan_runs(settings, [root / p for p in paths], {})
    outcomes = run_specs(settings, specs, experiment=f"review {base_sha[:8]}..{head_sha[:8]}")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.resolved_tracking_uri, settings.resolved_tracking_uri)
    tables: dict[str, list[str]] = {}
    for outcome in outcomes:
        nb = outcome.result.spec.notebook
        path = relative_to_repo(nb.path, root)
        with map_mlflow_errors(what=f"cannot read the base run of {path}", store=settings.resolved_tracking_uri,
                               error=ReviewError):
            base_metrics, source = _base_metrics(client, path, base_sha, nb.model.name if nb.model else None)
        status = "ok" if outcome.ok else f"FAILED: {code(str(outcome.result.error))}"
        lines = results_lines(status, source, outcome.result.records, base_metrics, nb.model)
        tables[path] = lines
    return tables

