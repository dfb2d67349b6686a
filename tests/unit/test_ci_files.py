"""The CI files nbops ships, linted offline: actionlint and the workflow schemas, least privilege."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((REPO / "ci" / "github").glob("*.yml"))


def test_github_workflows_pass_actionlint_and_schema():
    done = subprocess.run([str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gitlab_pipeline_passes_schema():
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
                           str(REPO / "ci" / "gitlab" / ".gitlab-ci.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_review_workflow_is_least_privilege():
    wf = yaml.safe_load((REPO / "ci" / "github" / "review.yml").read_text())
    on = wf.get("on", wf.get(True))
    assert "pull_request" in on and "pull_request_target" not in on
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "secrets." not in (REPO / "ci" / "github" / "review.yml").read_text()
    assert all(job["runs-on"] == "ubuntu-latest" for job in wf["jobs"].values())
