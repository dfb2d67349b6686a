"""A team's tracking server, for real: `mlflow server` on Debian's PostgreSQL with artifacts in
S3 (moto's server), the daily commands run against it through the CLI."""

from __future__ import annotations

import json
import time

import boto3
from mlflow.tracking import MlflowClient

from tests.lifecycle import MODEL, git, nbops
from tests.server.stack import BUCKET, S3_ENV


def _client(server):
    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def test_runs_models_and_artifacts_land_on_the_server(team_server, team_project):
    client = _client(team_server)
    exp = client.get_experiment_by_name("notebooks/clf")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert run.data.tags["nbops.git_sha"] and run.data.params["model"] in ("knn", "random_forest")
        assert "accuracy" in run.data.metrics
    # the artifacts went through the server into the bucket, not to a local folder
    s3 = boto3.client("s3", endpoint_url=team_server.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    for run in runs:
        assert any(run.info.run_id in k and k.endswith(".ipynb") for k in keys), keys[:20]
    assert not (team_project / "mlflow.db").exists() and not (team_project / "mlruns").exists()
    assert not (team_project / "notebooks" / "mlflow.db").exists()

    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"

    listed = json.loads(nbops(team_project, "models", "list", MODEL, "--format", "json").stdout)
    assert {str(row["version"]) for row in listed["versions"]} == {"1", "2"}


def test_predict_loads_the_champion_from_the_server(team_server, team_project, tmp_path):
    out = tmp_path / "pred.csv"
    proc = nbops(team_project, "predict", MODEL, "--input", str(team_project / "data" / "train.csv"),
                 "--output", str(out))
    assert f"from {MODEL}/1 (champion)" in proc.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 1501 and "prediction" in lines[0]


def test_plan_finds_cached_results_on_the_server(team_server, team_project):
    nbops(team_project, "run", "notebooks/clf.ipynb", "--jobs", "1", "--quiet")
    assert json.loads(nbops(team_project, "plan", "--all", "--format", "json").stdout)["include"] == []
    listed = json.loads(nbops(team_project, "plan", "--all", "--no-cache", "--format", "json").stdout)
    assert [e["notebook"] for e in listed["include"]] == ["notebooks/clf.ipynb"]


def test_serve_answers_from_the_servers_champion_and_challenger(team_server, team_project, tmp_path):
    import httpx

    from tests.e2e.test_serve import ROW, running

    with running(team_project, tmp_path / "serve.log", "--canary", "challenger=50") as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        versions = set()
        for i in range(20):
            reply = client.post("/predict", json={"records": [ROW]}, headers={"X-Request-Key": f"k{i}"})
            assert reply.status_code == 200, reply.text
            versions.add(reply.headers["X-Model-Version"])
    assert versions == {"1", "2"}


def test_reproduce_and_retrain_against_the_server(team_server, team_project, tmp_path):
    from tests.lifecycle import make_data

    done = nbops(team_project, "reproduce", f"{MODEL}@champion", "--quiet")
    assert "reproduced clf v1: every metric within" in done.stdout
    new = make_data(tmp_path / "fresh.csv", seed=3, shift={"f2": 2.0})
    done = nbops(team_project, "retrain", MODEL, "--data", str(new), "--quiet")
    assert "is challenger" in done.stdout
    client = _client(team_server)
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert client.get_run(challenger.run_id).data.tags["nbops.retrain_of"] == "clf/1"
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    assert git(team_project, "worktree", "list").count("\n") == 0  # reproduce's worktree is gone


def test_doctor_passes_on_the_team_server_and_leaves_nothing(team_server, team_project):
    proc = nbops(team_project, "doctor")
    assert "tracking server" in proc.stdout and "server mlflow" in proc.stdout
    for name in ("create a run", "tracking server", "artifact store", "register a model"):
        assert any(line.startswith("ok") and name in line for line in proc.stdout.splitlines()), proc.stdout
    client = _client(team_server)
    assert not client.search_registered_models("name = 'nbops-doctor-probe'")
    exp = client.get_experiment_by_name("nbops-doctor")
    assert client.search_runs([exp.experiment_id]) == []  # the probe run was deleted
    assert not (team_project / "mlflow.db").exists()


def test_a_server_that_is_down_is_one_line_within_10_s(team_server, team_project):
    team_server.kill()
    try:
        started = time.monotonic()
        proc = nbops(team_project, "run", "notebooks/clf.ipynb", "--quiet", check=False)
        took = time.monotonic() - started
        assert proc.returncode == 2, proc.stderr
        assert took < 10 + 3, took  # + the interpreter's start, on a loaded 2-core machine
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "not reachable" in lines[0] and "Traceback" not in proc.stderr
        doctor = nbops(team_project, "doctor", check=False)
        assert doctor.returncode == 1 and "FAIL  tracking server" in doctor.stdout
        assert "connection refused" in doctor.stdout
    finally:
        team_server.start()
    assert _client(team_server).get_experiment_by_name("notebooks/clf") is not None  # the data survived
