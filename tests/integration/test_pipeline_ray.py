"""The diamond pipeline on the Ray executor: the same order, parent and upstream() as locally."""

from __future__ import annotations

import pytest

from nbops.cli.main import main
from tests.conftest import all_runs
from tests.integration.test_pipeline import by_name, diamond, records

pytest.importorskip("ray", reason="the Ray executor is tested where nbops[ray] is installed")


def test_diamond_on_ray(project, mlflow_client, ray_address, capsys):
    paths = diamond(project)
    code = main(["run", *map(str, paths), "--executor", "ray", "--ray-address", ray_address])
    assert code == 0, capsys.readouterr()
    client = mlflow_client()
    runs = all_runs(client)
    [parent] = [r for r in runs if r.data.tags.get("nbops.pipeline") == "true"]
    children = by_name(runs)
    assert sorted(children) == ["evaluate", "prepare", "train_a", "train_b"]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id and c.info.status == "FINISHED"
               for c in children.values())
    a, b = records(client, children["train_a"]), records(client, children["train_b"])
    assert a["seen_rows"] == b["seen_rows"] == 10 and a["csv"] == "x,y\n1,2\n"
    assert a["t0"] < b["t1"] and b["t0"] < a["t1"], "train_a and train_b ran one after the other"
    assert records(client, children["evaluate"])["a_score"] == 1.0
