"""Pipelines of notebooks (issue 25): a diamond prepare -> train_a, train_b -> evaluate run in
order on real kernels into a real MLflow store; upstream() reads what the upstream logged."""

from __future__ import annotations

import json
from pathlib import Path

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook

PREPARE = """import sys, nbops
from nbops import kit
nbops.record('rows', rows)
nbops.record('classes', ['a', 'b'])
kit.log_text('x,y\\n1,2\\n', 'data/train.csv')
nbops.record('mlflow_imported', 'mlflow' in sys.modules)
"""

TRAIN = """import time, nbops
from nbops import kit
t0 = time.time()
up = kit.upstream('prepare')
nbops.record('seen_rows', up.records['rows'])
nbops.record('seen_classes', up.records['classes'])
nbops.record('seen_metric', up.metrics['rows'])
nbops.record('seen_param', up.params['rows'])
nbops.record('csv', up.artifact('data/train.csv').read_text())
nbops.record('upstream_run', up.run_id)
time.sleep(1.5)
nbops.record('t0', t0)
nbops.record('t1', time.time())
nbops.record('score', {score})
"""

EVALUATE = """import sys
import nbops
from nbops import kit
a, b = kit.upstream('train_a'), kit.upstream('train_b')
nbops.record('mlflow_imported', 'mlflow' in sys.modules)
nbops.record('a_score', a.metrics['score'])
nbops.record('b_records', b.records)
nbops.record('runs', [a.run_id, b.run_id])
"""


def diamond(root: Path, fail_a: bool = False) -> list[Path]:
    folder = root / "notebooks" / "diamond"
    train_a = TRAIN.format(score=1) + ("raise ValueError('train_a fails on purpose')\n" if fail_a else "")
    return [
        write_notebook(folder / "evaluate.ipynb", [("code", "x = 0", ["parameters"]), ("code", EVALUATE)],
                       {"needs": ["train_a", "train_b"]}),
        write_notebook(folder / "train_a.ipynb", [("code", "x = 0", ["parameters"]), ("code", train_a)],
                       {"needs": ["prepare"]}),
        write_notebook(folder / "train_b.ipynb", [("code", "x = 0", ["parameters"]),
                                                  ("code", TRAIN.format(score=2))], {"needs": ["prepare"]}),
        write_notebook(folder / "prepare.ipynb", [("code", "rows = 10", ["parameters"]), ("code", PREPARE)]),
    ]


def by_name(runs):
    return {Path(r.data.tags["nbops.notebook"]).stem: r for r in runs if "nbops.notebook" in r.data.tags
            and not r.data.tags.get("nbops.pipeline")}


def records(client, run):
    with open(client.download_artifacts(run.info.run_id, "nbops/records.json")) as f:
        return json.load(f)


def test_diamond_runs_in_order_in_parallel_with_parent_and_upstream(project, mlflow_client, capsys):
    paths = diamond(project)
    code = main(["run", *map(str, paths), "--jobs", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    # the summary lists the notebooks in the pipeline's order
    order = [line.split("notebooks/diamond/")[1].split(".ipynb")[0] for line in out.splitlines()
             if "notebooks/diamond/" in line and ".ipynb" in line]
    assert order[0] == "prepare" and order[-1] == "evaluate", out
    assert "pipeline run" in out

    client = mlflow_client()
    runs = all_runs(client)
    [parent] = [r for r in runs if r.data.tags.get("nbops.pipeline") == "true"]
    children = by_name(runs)
    assert sorted(children) == ["evaluate", "prepare", "train_a", "train_b"]
    assert len(runs) == 5 and parent.info.status == "FINISHED"
    for child in children.values():
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id  # nested in MLflow's UI
    assert client.get_experiment(parent.info.experiment_id).name == "notebooks/diamond"

    prep = records(client, children["prepare"])
    # kit.log_text wrote into the run's artifact folder itself: no mlflow in prepare's kernel,
    # and MLflow lists and serves the file as one of the run's artifacts
    assert prep["mlflow_imported"] is False
    assert [a.path for a in client.list_artifacts(children["prepare"].info.run_id, "data")] == ["data/train.csv"]
    with open(client.download_artifacts(children["prepare"].info.run_id, "data/train.csv")) as f:
        assert f.read() == "x,y\n1,2\n"
    for train in ("train_a", "train_b"):
        seen = records(client, children[train])
        assert seen["seen_rows"] == prep["rows"] == 10
        assert seen["seen_classes"] == prep["classes"] == ["a", "b"]
        assert seen["seen_metric"] == 10.0 and seen["seen_param"] == "10"
        assert seen["csv"] == "x,y\n1,2\n"
        assert seen["upstream_run"] == children["prepare"].info.run_id
    a, b = records(client, children["train_a"]), records(client, children["train_b"])
    assert a["t0"] < b["t1"] and b["t0"] < a["t1"], "train_a and train_b ran one after the other"
    ev = records(client, children["evaluate"])
    assert ev["a_score"] == 1.0 and ev["b_records"] == b
    # the embedded store: nbops run handed the upstreams over; reading them imported no mlflow (~2 s)
    assert ev["mlflow_imported"] is False
    assert ev["runs"] == [children["train_a"].info.run_id, children["train_b"].info.run_id]


def test_failing_train_a_skips_evaluate_and_train_b_finishes(project, mlflow_client, capsys):
    paths = diamond(project, fail_a=True)
    code = main(["run", *map(str, paths), "--jobs", "2"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAILED notebooks/diamond/train_a.ipynb: cell 2: ValueError: train_a fails on purpose" in out
    assert "SKIPPED notebooks/diamond/evaluate.ipynb: needs train_a, which did not succeed (not run)" in out
    runs = all_runs(mlflow_client())
    children = by_name(runs)
    assert {k: r.info.status for k, r in children.items()} == {
        "prepare": "FINISHED", "train_a": "FAILED", "train_b": "FINISHED"}  # evaluate: no run at all
    [parent] = [r for r in runs if r.data.tags.get("nbops.pipeline") == "true"]
    assert parent.info.status == "FAILED"
    assert not (project / "runs" / "evaluate").exists()


def test_only_evaluate_uses_the_newest_runs_of_what_it_needs(project, mlflow_client, capsys):
    paths = diamond(project)
    assert main(["run", *map(str, paths), "--jobs", "2"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main(["run", str(paths[0])]) == 0, capsys.readouterr().out
    client = mlflow_client()
    evals = sorted((r for r in all_runs(client) if r.data.tags.get("nbops.notebook", "").endswith("evaluate.ipynb")),
                   key=lambda r: r.info.start_time)
    assert len(evals) == 2 and records(client, evals[0])["runs"] == records(client, evals[1])["runs"]


def _bad(project, capsys, *paths):
    before = {p for p in project.rglob("*") if ".git" not in p.parts}
    code = main(["run", *map(str, paths)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    after = {p for p in project.rglob("*") if ".git" not in p.parts}
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, captured
    assert after == before, sorted(map(str, after - before))  # no store, no runs/, no temp file
    return lines[0]


def test_bad_graphs_are_one_line_exit_2_before_any_kernel(project, capsys):
    folder = project / "notebooks" / "bad"
    a = write_notebook(folder / "a.ipynb", [("code", "raise SystemExit('ran')")], {"needs": ["c"]})
    b = write_notebook(folder / "b.ipynb", [("code", "raise SystemExit('ran')")], {"needs": ["a"]})
    c = write_notebook(folder / "c.ipynb", [("code", "raise SystemExit('ran')")], {"needs": ["b"]})
    line = _bad(project, capsys, a, b, c)
    assert line.startswith("nbops: error: ") and "notebooks/bad/" in line and "a cycle: " in line
    assert "(hint: " in line and "metadata.nbops.needs" in line

    lonely = write_notebook(project / "notebooks" / "x" / "train.ipynb", [("code", "1")], {"needs": ["prepare"]})
    line = _bad(project, capsys, lonely)
    assert "notebooks/x/train.ipynb: needs 'prepare', but no notebook named 'prepare'" in line and "hint" in line

    one = write_notebook(project / "notebooks" / "one" / "prepare.ipynb", [("code", "1")])
    two = write_notebook(project / "notebooks" / "two" / "prepare.ipynb", [("code", "1")])
    line = _bad(project, capsys, one, two, lonely)
    assert "needs 'prepare', but several notebooks given are named 'prepare'" in line

    twice = write_notebook(project / "notebooks" / "y" / "train.ipynb", [("code", "1")],
                           {"needs": ["prepare", "prepare"]})
    line = _bad(project, capsys, twice)
    assert "notebooks/y/train.ipynb: need 'prepare' is listed twice in metadata.nbops.needs" in line


def test_with_needs_runs_what_a_notebook_needs_as_one_pipeline(project, mlflow_client, capsys):
    """`nbops run evaluate.ipynb --with-needs` (a Lab job on a pipeline notebook): the notebooks
    it needs run first, with their defaults, under one parent run; -p sets evaluate only."""
    evaluate = diamond(project)[0]
    assert main(["run", str(evaluate), "--with-needs", "-p", "x=7", "--jobs", "2"]) == 0, capsys.readouterr()
    runs = all_runs(mlflow_client())
    [parent] = [r for r in runs if r.data.tags.get("nbops.pipeline") == "true"]
    children = by_name(runs)
    assert sorted(children) == ["evaluate", "prepare", "train_a", "train_b"]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children.values())
    assert children["evaluate"].data.params["x"] == "7"
    assert children["train_a"].data.params["x"] == children["train_b"].data.params["x"] == "0"
    assert records(mlflow_client(), children["evaluate"])["runs"] == [
        children["train_a"].info.run_id, children["train_b"].info.run_id]
