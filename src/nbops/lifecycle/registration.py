"""Registration: the model a successful run logged becomes a version of its registered model,
when the notebook's gates hold on the run's metrics. The run layer calls a `Registrar` after a run
(`nbops.run.stage_data.Registrar`); it never imports this module.

Model names are checked before any kernel starts by `notebook/model_name.py` (pure, no MLflow
import; `validate_model_name` re-exported here), so a name MLflow would refuse is found before
the run, not after it.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from nbops.core.context import who_ran
from nbops.core.errors import AlreadyExists, TrackingError, map_mlflow_errors
from nbops.core.gates import failed_gates
from nbops.core.store import QUIET_MLFLOW, mlflow_settings, params_digest, use_store
from nbops.notebook.document import ModelSpec
from nbops.notebook.model_name import MAX_MODEL_NAME, validate_model_name  # noqa: F401 - re-exported


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _recorded(client: Any, run_id: str) -> dict[str, Any]:
    """What the notebook recorded that did not become an MLflow metric (`Tracker.finish` logs
    it as nbops/other_records.json): NaN and infinite numbers are among those, as the strings
    `nbops.record` writes for them ("nan", "inf", "-inf")."""
    import tempfile

    mlflow_settings(QUIET_MLFLOW)  # as lineage.py: no progress bar on stderr
    with tempfile.TemporaryDirectory(prefix="nbops-records-") as tmp:
        try:
            with map_mlflow_errors(what="nbops/other_records.json"):
                path = client.download_artifacts(run_id, "nbops/other_records.json", tmp)
            with open(path, encoding="utf-8") as f:
                data = json.load(f)  # json reads the NaN and Infinity that log_dict wrote
        except (TrackingError, OSError, ValueError):  # none recorded, or not readable
            return {}
    return data if isinstance(data, dict) else {}


def _non_finite(client: Any, run_id: str, metrics: dict[str, float], wanted: set[str]) -> dict[str, float]:
    """The WANTED metrics that are NaN or infinite, logged as such or recorded with `nbops.record`."""
    bad = {k: v for k, v in metrics.items() if k in wanted and not math.isfinite(v)}
    missing = wanted - metrics.keys()
    if missing:
        records = _recorded(client, run_id)
        for k in sorted(missing):
            value = _as_non_finite(records.get(k))
            if value is not None:
                bad[k] = value
    return bad


def _as_non_finite(value: Any) -> float | None:
    """VALUE as a NaN or infinite float when it is one (or `nbops.record`'s string for one)."""
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return None


def _gate_check(client: Any, run_id: str, spec: ModelSpec,
                metrics: dict[str, float]) -> tuple[list[str], dict[str, float]]:
    """Why the run's model may not be registered (its gates on METRICS), and its non-finite gate
    and compare metrics: ([failure, ...], {metric: NaN or inf})."""
    gated = {g.metric for g in spec.gates}
    bad = _non_finite(client, run_id, metrics, gated | ({spec.compare} if spec.compare else set()))
    # a NaN gate metric is never recorded as a metric (the gate would only say "not recorded"),
    # and an infinite one would pass `accuracy >= 0.9`: both are said for what they are
    failures = [f"metric {k} is {_word(v)}" for k, v in sorted(bad.items()) if k in gated]
    failures += [f for f in failed_gates(spec.gates, metrics)
                 if not any(f.startswith(f"gate '{g}'") for g in spec.gates if g.metric in bad)]
    return failures, bad


def _version_tags(run: Any, run_id: str, spec: ModelSpec) -> dict[str, str]:
    """The new version's tags: the run's metrics (rounded for display), git, notebook, who, gates."""
    metrics, run_tags = dict(run.data.metrics), run.data.tags
    tags = {f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()}
    tags.update({k: run_tags.get(k, "") for k in ("nbops.git_sha", "nbops.git_branch", "nbops.notebook",
                                                 "nbops.fingerprint", "nbops.template")})
    tags["nbops.run_id"] = run_id
    # who registered it: MLflow's registry keeps no user for a version (its user_id is never
    # set), and under basic auth the server's user is the one that counts (core/context.py)
    tags["nbops.user"] = who_ran()
    tags["nbops.params_digest"] = params_digest(dict(run.data.params))
    tags["nbops.gates"] = "passed: " + ", ".join(map(str, spec.gates)) if spec.gates else "none"
    return tags


def _model_tags(spec: ModelSpec) -> dict[str, str]:
    """The registered model's tags: how its versions are ranked and gated."""
    return {
        "nbops.compare": spec.compare or "",
        "nbops.higher_is_better": str(spec.higher_is_better).lower(),
        "nbops.gates": json.dumps([str(g) for g in spec.gates]),
    }


def _ranking_note(spec: ModelSpec, metrics: dict[str, float], bad: dict[str, float]) -> str:
    """Why a registered version ranks last ("" when its compare metric is a number)."""
    if spec.compare and spec.compare in bad:
        return f"compare metric {spec.compare} is {_word(bad[spec.compare])}: registered, ranked last"
    if spec.compare and spec.compare not in metrics:
        return f"compare metric {spec.compare} was not recorded: registered, ranked last"
    return ""


class Registrar:
    """Registers runs' models. DESCRIBE_MODEL: whether a registration rewrites the registered
    model's compare metric and gates (the newest notebook describes the model; a re-run of an
    old commit's notebook must not)."""

    def __init__(self, describe_model: bool = True):
        self.describe_model = describe_model

    def __call__(self, client: Any, uri: str, run_id: str,
                 spec: ModelSpec | None) -> tuple[str | None, str | None, str]:
        """Register the model RUN_ID logged, when its gates hold: (name, version, note)."""
        if spec is None:  # before any import of mlflow: a run without a model needs none
            return None, None, "no metadata.nbops.model.name: not registered"
        reason = validate_model_name(spec.name)
        if reason:  # MLflow would refuse it with an exception; say why instead
            return spec.name, None, f"{reason}: not registered (rename metadata.nbops.model.name)"
        failed = functools.partial(map_mlflow_errors, what="registration failed", store=uri)
        try:
            with failed():
                run = client.get_run(run_id)
                logged = client.search_logged_models(
                    experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
                )
        except TrackingError as exc:
            return spec.name, None, exc.message
        if not logged:
            return spec.name, None, "the notebook logged no model: not registered"
        metrics = dict(run.data.metrics)
        failures, bad = _gate_check(client, run_id, spec, metrics)
        if failures:
            client.set_tag(run_id, "nbops.gates", "failed")
            return spec.name, None, "; ".join(failures) + ": not registered"
        model = max(logged, key=lambda m: m.creation_timestamp or 0)
        tags = _version_tags(run, run_id, spec)
        try:
            version = self._create_version(client, uri, spec, model.model_id, run_id, tags)
        except TrackingError as exc:
            return spec.name, None, exc.message
        client.set_tag(run_id, "nbops.gates", "passed")
        return spec.name, version, _ranking_note(spec, metrics, bad)

    def _create_version(self, client: Any, uri: str, spec: ModelSpec, model_id: str, run_id: str,
                        tags: dict[str, str]) -> str:
        """The registered model (created, or described anew) and its new version of MODEL_ID;
        TrackingError when MLflow refuses."""
        failed = functools.partial(map_mlflow_errors, what="registration failed", store=uri)
        model_tags = _model_tags(spec)
        try:
            with failed():
                client.create_registered_model(spec.name, tags=model_tags)
        except AlreadyExists:
            # it exists: the notebook's newest metadata describes the model from now on
            if self.describe_model:
                with failed():
                    for key, value in model_tags.items():
                        client.set_registered_model_tag(spec.name, key, value)
        with failed():
            use_store(uri)  # it checks the `models:/` source through MLflow's global URI
            version = client.create_model_version(
                spec.name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id,
            )
        return str(version.version)  # MLflow gives an int; the protocol says str
