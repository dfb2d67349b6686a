"""`nbops plan` of a pipeline (issue 25): a notebook's fingerprint includes its upstreams', so a
change to `prepare` reruns all four notebooks of the diamond and a change to `evaluate` only it;
once the diamond ran, everything is cached and `run --changed` has nothing to do."""

from __future__ import annotations

import json

from nbops.cli.main import main
from tests.conftest import commit_all, git
from tests.integration.test_pipeline import diamond

D = "notebooks/diamond/"


def plan(capsys, *args):
    assert main(["plan", *args]) == 0
    return {e["notebook"]: e for e in json.loads(capsys.readouterr().out)["include"]}


def edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def test_plan_follows_the_graph_and_caches_the_pipeline(project, capsys):
    evaluate, train_a, train_b, prepare = diamond(project)
    commit_all(project, "diamond")
    assert plan(capsys, "--base", "HEAD") == {}

    edit(prepare, "rows = 10", "rows = 11")
    entries = plan(capsys, "--base", "HEAD")
    assert list(entries) == [D + "prepare.ipynb", D + "train_a.ipynb", D + "train_b.ipynb", D + "evaluate.ipynb"]
    assert entries[D + "evaluate.ipynb"]["reason"] == "needs prepare, which changed"
    assert entries[D + "evaluate.ipynb"]["needs"] == [D + "train_a.ipynb", D + "train_b.ipynb"]
    assert entries[D + "train_b.ipynb"]["needs"] == [D + "prepare.ipynb"]
    git(project, "checkout", "--", str(prepare))

    edit(evaluate, "import nbops", "import nbops  # reads both")
    entries = plan(capsys, "--base", "HEAD")
    assert list(entries) == [D + "evaluate.ipynb"] and entries[D + "evaluate.ipynb"]["needs"] == []
    assert entries[D + "evaluate.ipynb"]["reason"] == f"{D}evaluate.ipynb changed"

    assert main(["plan", "--graph"]) == 0
    graph = capsys.readouterr().out.splitlines()
    assert graph == [f"1  {D}prepare.ipynb", f"2  {D}train_a.ipynb  needs prepare",
                     f"2  {D}train_b.ipynb  needs prepare", f"3  {D}evaluate.ipynb  needs train_a, train_b"]

    # run --changed: only evaluate runs; what it needs comes from their newest successful runs,
    # and there are none yet: one line, exit 2, before any kernel
    assert main(["run", "--changed", "--base", "HEAD"]) == 2
    err = capsys.readouterr().err
    assert "needs 'train_a', which was not given and has no successful run" in err and "hint" in err

    edit(prepare, "rows = 10", "rows = 12")
    assert main(["run", "--changed", "--base", "HEAD", "--jobs", "2"]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["plan", "--base", "HEAD"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["include"] == []
    assert captured.err.count("cached notebooks/diamond/") == 4
    assert main(["run", "--changed", "--base", "HEAD"]) == 0
    assert "nothing to run" in capsys.readouterr().out
