"""The shipped CI pipelines run a pipeline of notebooks in order (issue 25): GitLab jobs `needs:`
the jobs of the notebooks they need; GitHub runs a pipeline as one matrix entry."""

from __future__ import annotations

import json
import shlex

import yaml

from nbops.ci.plan import Plan, PlanEntry, as_github_output, as_gitlab_child


def entry(name, needs=(), gpu=0):
    return PlanEntry(notebook=f"notebooks/p/{name}.ipynb", reason="changed", runs_on="ubuntu-latest",
                     gpu=gpu, timeout_minutes=10, fingerprint=name, needs=[f"notebooks/p/{n}.ipynb" for n in needs])


DIAMOND = [entry("prepare"), entry("train_a", ["prepare"]), entry("train_b", ["prepare"], gpu=1),
           entry("evaluate", ["train_a", "train_b"])]


def test_gitlab_child_jobs_need_their_upstream_jobs():
    child = yaml.safe_load(as_gitlab_child(Plan(run=[*DIAMOND, entry("alone")], cached=[])))
    assert "needs" not in child["run notebooks/p/prepare.ipynb"]
    assert child["run notebooks/p/evaluate.ipynb"]["needs"] == [
        "run notebooks/p/train_a.ipynb", "run notebooks/p/train_b.ipynb"]
    assert child["run notebooks/p/train_b.ipynb"]["needs"] == ["run notebooks/p/prepare.ipynb"]
    assert all(need in child for job in child.values() if isinstance(job, dict) for need in job.get("needs", []))


def test_github_runs_a_pipeline_as_one_entry_in_order():
    lines = as_github_output(Plan(run=[*DIAMOND, entry("alone")], cached=[])).splitlines()
    matrix = json.loads(lines[0][len("matrix="):])
    assert lines[1] == "count=2"
    pipeline, alone = matrix["include"]
    assert shlex.split(pipeline["notebook"]) == [e.notebook for e in DIAMOND]
    assert pipeline["gpu"] == 1 and pipeline["timeout_minutes"] == 40
    assert alone["notebook"] == "notebooks/p/alone.ipynb" and alone["needs"] == []
