"""A team's store with more than one page of experiments (MLflow pages at 1,000): the plan's
cache, `review --run`'s base lookup and the orphan reaper look through every page."""

from __future__ import annotations

import time

from mlflow.tracking import MlflowClient

from nbops.ci.plan import _successful_runs_mlflow
from nbops.core.store import all_experiment_ids


def test_lookups_page_through_1500_experiments(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    # the oldest experiment holds the cached result: MLflow lists the newest first, so it is on
    # the last page
    oldest = client.create_experiment("notebooks/first")
    run = client.create_run(oldest, tags={"nbops.fingerprint": "f" * 64})
    client.set_terminated(run.info.run_id, "FINISHED")
    started = time.monotonic()
    for i in range(1500):
        client.create_experiment(f"review/{i}")
    made = time.monotonic() - started
    assert oldest not in [e.experiment_id for e in client.search_experiments()]  # not on page 1
    ids = all_experiment_ids(client)
    assert len(ids) == 1502 and oldest in ids  # + MLflow's Default
    assert _successful_runs_mlflow(uri, ["f" * 64, "0" * 64]) == {"f" * 64: run.info.run_id}
    print(f"1,500 experiments made in {made:.1f} s")
