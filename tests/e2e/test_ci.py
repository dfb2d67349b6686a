"""The CI pipelines nbops ships, their `run:` steps executed in order in a project made by
`nbops init`, with the environment CI would give them (linted offline in tests/unit/test_ci_files.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, all_runs, git

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


def _expr(value: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: context.get(m.group(1), ""), str(value))


def run_steps(workflow: Path, job: str, cwd: Path, context: dict[str, str], env: dict[str, str]) -> dict:
    """Run a job's `run:` steps in order as CI would (setup/install steps excluded); returns the
    outputs the steps wrote to $GITHUB_OUTPUT."""
    wf = yaml.safe_load(workflow.read_text())
    outputs: dict[str, str] = {}
    for step in wf["jobs"][job]["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        out_file = cwd / ".github_output"
        out_file.write_text("")
        step_env = {**os.environ, **env, "GITHUB_OUTPUT": str(out_file), "CI": "true",
                    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    **{k: _expr(v, context) for k, v in (wf.get("env") or {}).items()},
                    **{k: _expr(v, context) for k, v in (step.get("env") or {}).items()}}
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=step_env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"step {step.get('id') or step.get('name')}: {done.stdout}{done.stderr}"
        for line in out_file.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[key] = value
    return outputs


def test_pipelines_run_in_an_initialised_project(tmp_path):
    import json

    root = tmp_path / "proj"
    assert nbops("init", str(root), "--name", "churn", cwd=tmp_path).returncode == 0
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "init")
    before = git(root, "rev-parse", "HEAD")
    # a push that changes the example notebook's parameter
    nb_path = root / "notebooks" / "example.ipynb"
    nb_path.write_text(nb_path.read_text().replace('\\"iris\\"', '\\"wine\\"'))
    git(root, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qam", "wine")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    wf = REPO / "ci" / "github" / "notebooks.yml"
    secrets = {"secrets.MLFLOW_TRACKING_URI": uri}
    outputs = run_steps(wf, "plan", root, {**secrets, "github.event.before": before, "inputs.all": ""}, {})
    assert outputs["count"] == "1"
    matrix = json.loads(outputs["matrix"])
    [entry] = matrix["include"]
    assert entry["notebook"] == "notebooks/example.ipynb" and entry["runs_on"] == "ubuntu-latest"
    run_steps(wf, "run", root, {**secrets, "matrix.notebook": entry["notebook"],
                                "matrix.reason": entry["reason"]}, {})
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri, uri)
    [run] = all_runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["nbops.git_sha"] == git(root, "rev-parse", "HEAD")
    assert client.search_model_versions("name = 'example'")

    review = REPO / "ci" / "github" / "review.yml"
    run_steps(review, "review", root, {"github.event.pull_request.base.sha": before}, {})
    body = (root / "review" / "review.md").read_text()
    assert body.startswith("<!-- nbops-review -->")
    assert "`notebooks/example.ipynb` (modified)" in body and "dataset: 'iris' -> 'wine'" in body
