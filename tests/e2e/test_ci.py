"""The CI pipelines nbops ships, their `run:` steps executed in order in a project made by
`nbops init`, with the environment CI would give them (linted offline in tests/unit/test_ci_files.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, all_runs, git
from tests.mlflow_server import mlflow_server as running_server

BIN = Path(sys.executable).parent


def nbops(*args, cwd, env=None):
    return subprocess.run([str(BIN / "nbops"), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_init_refuses_to_overwrite_and_names_the_files(tmp_path):
    assert nbops("init", "p", "--ci", "gitlab", cwd=tmp_path).returncode == 0
    assert (tmp_path / "p" / ".gitlab-ci.yml").is_file() and not (tmp_path / "p" / ".github").exists()
    (tmp_path / "p" / "README.md").write_text("mine")
    done = nbops("init", "p", "--ci", "gitlab", cwd=tmp_path)
    assert done.returncode == 2 and "would overwrite" in done.stderr and "README.md" in done.stderr
    assert (tmp_path / "p" / "README.md").read_text() == "mine"
    assert nbops("init", "p", "--ci", "gitlab", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "p" / "README.md").read_text() != "mine"


def _lookup(expr: str, context: dict[str, str]) -> str:
    """One expression as the workflows here write them: a context value, or `a || b`."""
    for part in expr.split("||"):
        value = context.get(part.strip(), "")
        if value:
            return value
    return ""


def _expr(value: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: _lookup(m.group(1), context), str(value))


def run_job(workflow: Path, job: str, cwd: Path, context: dict[str, str],
            path: Path | None = None) -> dict[str, str]:
    """Run a job's `run:` steps in order as GitHub would: bash -eo pipefail, the workflow's, the
    job's and the step's `env:` with their expressions resolved from CONTEXT (secrets, github.*,
    matrix.*, inputs.*, and the `steps.ID.outputs.KEY` / `steps.ID.outcome` of the steps before),
    a step after a failed one only when its `if:` says always(). Setup and install steps are left
    out (the dev venv is the runner's Python). Returns the job's `outputs:` resolved; a failed
    step fails the test with its output."""
    wf = yaml.safe_load(workflow.read_text())
    spec = wf["jobs"][job]
    context = {**context, "steps.install.outcome": "success"}
    failed = ""
    for step in spec["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        if failed and "always()" not in str(step.get("if", "")):
            continue
        out_file = cwd / ".github_output"
        out_file.write_text("")
        env = {**os.environ, "GITHUB_OUTPUT": str(out_file), "CI": "true", "GITHUB_ACTIONS": "true",
               "GITHUB_RUN_ID": "1", "GITHUB_REPOSITORY": "team/churn",
               "PATH": os.pathsep.join(str(p) for p in (path, BIN, os.environ["PATH"]) if p)}
        for scope in (wf, spec, step):
            env.update({k: _expr(v, context) for k, v in (scope.get("env") or {}).items()})
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        sid = step.get("id", "")
        context[f"steps.{sid}.outcome"] = "success" if done.returncode == 0 else "failure"
        if done.returncode != 0:
            failed = f"{job}: step {sid or step.get('name')} exited {done.returncode}: {done.stdout}{done.stderr}"
        for line in out_file.read_text().splitlines():
            key, _, value = line.partition("=")
            context[f"steps.{sid}.outputs.{key}"] = value
        out_file.unlink()
    assert not failed, failed
    return {k: _expr(v, context) for k, v in (spec.get("outputs") or {}).items()}


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on a sqlite file with proxied artifacts, on a free local port."""
    with running_server(tmp_path / "server") as server:
        yield server.uri


def drifted_wine(folder: Path) -> tuple[Path, Path]:
    """The wine data the example notebook trained on, and a copy whose features have all moved."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    reference, current = folder / "reference.csv", folder / "current.csv"
    frame.to_csv(reference, index=False)
    features = [c for c in frame.columns if c != "target"]
    frame[features] = frame[features] * 1.5 + 1.0
    frame.to_csv(current, index=False)
    return reference, current


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


@pytest.mark.timeout(900)  # about 200 s on a busy 2-core machine: 5 notebook runs, 2 servers
def test_github_workflows_run_against_a_tracking_server(tmp_path, mlflow_server):
    """notebooks.yml (plan, then the matrix it makes), review.yml (review, metrics, notebook tests)
    run step by step in a project `nbops init` made, tracking into a real `mlflow server`; an
    empty tracking secret makes the tracking jobs fail loudly."""
    from mlflow.tracking import MlflowClient

    root = tmp_path / "proj"
    assert nbops("init", str(root), "--name", "churn", cwd=tmp_path).returncode == 0
    git(root, "init", "-q", "-b", "main")
    before = commit(root, "init")
    # a push that changes the example notebook's parameter
    nb_path = root / "notebooks" / "example.ipynb"
    nb_path.write_text(nb_path.read_text().replace('\\"iris\\"', '\\"wine\\"'))
    head = commit(root, "wine")
    workflows = REPO / "ci" / "github"
    secrets = {"secrets.MLFLOW_TRACKING_URI": mlflow_server}

    # push to main: plan, then one `run` job per matrix entry, as `fromJSON(needs.plan.outputs.matrix)`
    push = {**secrets, "github.event.before": before, "inputs.all": ""}
    plan = run_job(workflows / "notebooks.yml", "plan", root, push)
    assert plan["count"] == "1"
    [entry] = json.loads(plan["matrix"])["include"]
    assert entry["notebook"] == "notebooks/example.ipynb" and entry["runs_on"] == "ubuntu-latest"
    for index, item in enumerate(json.loads(plan["matrix"])["include"]):
        run_job(workflows / "notebooks.yml", "run", root,
                {**secrets, **{f"matrix.{k}": str(v) for k, v in item.items()},
                 "strategy.job-index": str(index)})
    client = MlflowClient(mlflow_server, mlflow_server)
    [run] = all_runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["nbops.git_sha"] == head
    assert [v.version for v in client.search_model_versions("name = 'example'")] == ["1"]
    assert not (root / "mlflow.db").exists()  # nothing went to a local store
    # the same push planned again: the server has a run with this fingerprint
    assert run_job(workflows / "notebooks.yml", "plan", root, push)["count"] == "0"

    # an empty secret: the plan job fails with one line naming it, and writes no local store
    with pytest.raises(AssertionError, match="MLFLOW_TRACKING_URI is empty"):
        run_job(workflows / "notebooks.yml", "plan", root, {**push, "secrets.MLFLOW_TRACKING_URI": ""})
    assert not (root / "mlflow.db").exists()

    # retrain.yml on its schedule: a person made v1 champion; the data it sees now has drifted
    assert nbops("models", "promote", "example", "1", "--alias", "champion", cwd=root,
                 env={"MLFLOW_TRACKING_URI": mlflow_server}).returncode == 0
    reference, current = drifted_wine(tmp_path)
    scheduled = {**secrets, "vars.NBOPS_RETRAIN_MODEL": "example",
                 "vars.NBOPS_REFERENCE_DATA": str(reference), "vars.NBOPS_CURRENT_DATA": str(current)}
    outputs = run_job(workflows / "retrain.yml", "monitor", root, scheduled)
    assert outputs == {"challenger": "2"}  # the approval jobs run when this is set
    aliases = {v.version: client.get_model_version("example", v.version).aliases
               for v in client.search_model_versions("name = 'example'")}
    assert aliases == {"1": ["champion"], "2": ["challenger"]}
    assert json.loads((root / "monitor" / "drift.json").read_text())["alarm"]
    assert "v2 is challenger" in (root / "monitor" / "summary.txt").read_text()
    # the promote job, once a reviewer of the approval environment said yes (GitHub's API, which
    # names that reviewer, is a stand-in `gh` here): approved by them, then champion
    stand_in = tmp_path / "gh-bin"
    stand_in.mkdir()
    (stand_in / "gh").write_text('#!/bin/sh\ncase "$*" in *"/approvals"*) echo alice;; *) exit 1;; esac\n')
    (stand_in / "gh").chmod(0o755)
    run_job(workflows / "retrain.yml", "promote", root,
            {**scheduled, "needs.monitor.outputs.challenger": "2", "github.token": "t"}, path=stand_in)
    champion = client.get_model_version_by_alias("example", "champion")
    assert champion.version == "2" and champion.tags["nbops.approved_by"] == "github:alice"
    # the next week, no drift: no new challenger, no approval asked for
    outputs = run_job(workflows / "retrain.yml", "monitor", root,
                      {**scheduled, "vars.NBOPS_CURRENT_DATA": str(reference)})
    assert outputs == {"challenger": ""}

    # a pull request from a branch of this repository: review, metrics, notebook tests
    git(root, "checkout", "-q", "-b", "pr")
    nb_path.write_text(nb_path.read_text().replace('\\"wine\\"', '\\"breast_cancer\\"'))
    pr_head = commit(root, "breast cancer")
    review = workflows / "review.yml"
    pr = {"github.event.pull_request.base.sha": head, "github.event.pull_request.number": "7",
          "github.event.pull_request.head.sha": pr_head}
    run_job(review, "review", root, pr)
    body = (root / "review" / "review.md").read_text()
    assert body.startswith("<!-- nbops-review -->")
    assert "`notebooks/example.ipynb` (modified)" in body and "dataset: 'wine' -> 'breast_cancer'" in body
    assert f"→ `{pr_head}`" in body, "review.md names the pull request's head commit, not HEAD"
    meta = {name: (root / "pr" / name).read_text().strip() for name in ("number", "head-sha", "check")}
    assert meta == {"number": "7", "head-sha": pr_head, "check": "success"}

    metrics_job = yaml.safe_load(review.read_text())["jobs"]["metrics"]
    assert metrics_job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    run_job(review, "metrics", root, {**pr, **secrets})
    with_metrics = (root / "review-metrics" / "review.md").read_text()
    assert with_metrics.startswith("<!-- nbops-review -->") and "accuracy" in with_metrics
    with pytest.raises(AssertionError, match="MLFLOW_TRACKING_URI is empty"):
        run_job(review, "metrics", root, {**pr, "secrets.MLFLOW_TRACKING_URI": ""})

    run_job(review, "notebook-tests", root, pr)
    kept = list((root / "notebook-tests").rglob("*.ipynb"))
    assert kept, "notebook-tests keeps the executed notebooks for its artifact"
