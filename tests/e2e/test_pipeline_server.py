"""The shipped pipeline template (`nbops new pipeline`) against a real `mlflow server`: each run is
logged locally first and uploaded, so the kernel's own MLflow store is not the pipeline's. prepare's
`kit.log_text` writes into its local run's artifacts, train reads them through `kit.upstream`,
evaluate loads train's model with `upstream("train").model_path()` from the server (not
`runs:/<id>/model` against the kernel's store, where the run is not), and the uploaded train
run links its model as MLflow's own `log_model` does, so `runs:/<id>/model` resolves on the
server too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import commit_all
from tests.mlflow_server import MlflowServer

NBOPS = str(Path(sys.executable).parent / "nbops")


def test_pipeline_template_on_a_server(project, tmp_path):
    from mlflow.tracking import MlflowClient

    assert subprocess.run([NBOPS, "new", "pipeline", "churn"], cwd=project, capture_output=True).returncode == 0
    commit_all(project, "pipeline")
    server = MlflowServer(tmp_path / "server")
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}
    env.update(MLFLOW_TRACKING_URI=server.uri)
    try:
        done = subprocess.run([NBOPS, "run", *sorted(str(p) for p in (project / "notebooks" / "churn").glob("*.ipynb")),
                               "--jobs", "2"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        client = MlflowClient(server.uri)
        runs = {Path(r.data.tags.get("nbops.notebook", "")).stem: r
                for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
                if not r.data.tags.get("nbops.pipeline")}
        assert {"prepare", "train", "evaluate"} <= set(runs)
        assert runs["evaluate"].data.metrics["test_accuracy"] > 0.8
        assert {a.path for a in client.list_artifacts(runs["prepare"].info.run_id, "data")} == \
            {"data/train.csv", "data/test.csv"}
        train = runs["train"].info.run_id
        # linked on upload, as `log_model` links it: `runs:/<id>/model` finds the model by it
        [output] = client.get_run(train).outputs.model_outputs
        assert client.get_logged_model(output.model_id).source_run_id == train
    finally:
        server.stop()
