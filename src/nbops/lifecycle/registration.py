"""Registration: the model a successful run logged becomes a version of its registered model,
when the notebook's gates hold on the run's metrics. The run layer calls a `Registrar` after a run
(`nbops.run.tracking.Registrar`); it never imports this module."""

from __future__ import annotations

import json
from typing import Any

from nbops.core.errors import first_line
from nbops.core.gates import failed_gates
from nbops.core.store import is_already_exists, mask_uri, params_digest, use_store
from nbops.notebook.document import ModelSpec


class Registrar:
    """Registers runs' models. DESCRIBE_MODEL: whether a registration rewrites the registered
    model's compare metric and gates (the newest notebook describes the model; a re-run of an
    old commit's notebook must not)."""

    def __init__(self, describe_model: bool = True):
        self.describe_model = describe_model

    def __call__(self, client: Any, uri: str, run_id: str,
                 spec: ModelSpec | None) -> tuple[str | None, str | None, str]:
        """Register the model RUN_ID logged, when its gates hold: (name, version, note)."""
        from mlflow.exceptions import MlflowException

        if spec is None:
            return None, None, "no metadata.nbops.model.name: not registered"
        try:
            run = client.get_run(run_id)
            logged = client.search_logged_models(
                experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
            )
        except MlflowException as exc:
            return spec.name, None, f"registration failed: {mask_uri(first_line(exc))}"
        if not logged:
            return spec.name, None, "the notebook logged no model: not registered"
        metrics, run_tags = dict(run.data.metrics), run.data.tags
        failures = failed_gates(spec.gates, metrics)
        if failures:
            client.set_tag(run_id, "nbops.gates", "failed")
            return spec.name, None, "; ".join(failures) + ": not registered"
        model = max(logged, key=lambda m: m.creation_timestamp or 0)
        tags = {f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()}
        tags.update({k: run_tags.get(k, "") for k in ("nbops.git_sha", "nbops.git_branch", "nbops.notebook",
                                                     "nbops.fingerprint", "nbops.template")})
        tags["nbops.run_id"] = run_id
        tags["nbops.params_digest"] = params_digest(dict(run.data.params))
        tags["nbops.gates"] = "passed: " + ", ".join(map(str, spec.gates)) if spec.gates else "none"
        model_tags = {
            "nbops.compare": spec.compare or "",
            "nbops.higher_is_better": str(spec.higher_is_better).lower(),
            "nbops.gates": json.dumps([str(g) for g in spec.gates]),
        }
        try:
            try:
                client.create_registered_model(spec.name, tags=model_tags)
            except MlflowException as exc:
                if not is_already_exists(exc):
                    raise
                # it exists: the notebook's newest metadata describes the model from now on
                if self.describe_model:
                    for key, value in model_tags.items():
                        client.set_registered_model_tag(spec.name, key, value)
            use_store(uri)  # it checks the `models:/` source through MLflow's global URI
            version = client.create_model_version(
                spec.name, source=f"models:/{model.model_id}", run_id=run_id, tags=tags,
                model_id=model.model_id,
            )
        except MlflowException as exc:
            return spec.name, None, f"registration failed: {mask_uri(first_line(exc))}"
        client.set_tag(run_id, "nbops.gates", "passed")
        return spec.name, version.version, ""
