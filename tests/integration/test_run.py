"""`nbops run` end to end on real kernels and a real MLflow store (sqlite in a temp project)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from nbops.cli.main import main
from tests.conftest import all_runs, commit_all, git, write_notebook

TRAIN = '''import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
import nbops

X, y = load_iris(return_X_y=True, as_frame=True)
clf = LogisticRegression(C=C, max_iter=500, random_state=seed).fit(X, y)
acc = float(clf.score(X, y))
nbops.record("accuracy", acc)
nbops.record("classes", sorted(set(int(v) for v in y)))
nbops.record("label", label)
nbops.record("acc@val", acc)  # not a valid MLflow metric name: kept as a record
mlflow.sklearn.log_model(clf, name="model", input_example=X.head(2),
                         pip_requirements=["scikit-learn"])
'''


def classifier_notebook(root, gates=("accuracy >= 0.5",), name="iris.ipynb", data=None):
    meta = {"model": {"name": "iris-test", "gates": list(gates), "compare": "accuracy"}}
    if data:
        meta["data"] = data
    return write_notebook(root / "notebooks" / name, [
        ("markdown", "# Iris"),
        ("code", 'C = 1.0  # regularisation\nseed = 0\nlabel = "base"', ["parameters"]),
        ("code", TRAIN),
    ], meta)


def test_successful_run_is_tracked_and_registered(project, mlflow_client, capsys):
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("a,b\n1,2\n")
    nb_path = classifier_notebook(project, data=["data/train.csv"])
    sha = commit_all(project)

    code = main(["run", str(nb_path), "-p", "C=0.5", "-p", "label=tuned"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "iris-test v1" in out and "accuracy=" in out

    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"C": "0.5", "seed": "0", "label": "tuned"}
    assert run.data.metrics["accuracy"] > 0.9
    tags = run.data.tags
    assert tags["nbops.git_sha"] == sha == git(project, "rev-parse", "HEAD")
    assert tags["nbops.git_branch"] == "main" and tags["nbops.git_dirty"] == "false"
    assert tags["nbops.notebook"] == "notebooks/iris.ipynb"
    assert tags["nbops.device"] == "cpu" and tags["nbops.version"]
    assert len(tags["nbops.fingerprint"]) == 64 and tags["nbops.data_digest"]
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "notebook"))
    assert len(artifacts) == 2 and artifacts[0].endswith(".ipynb") and artifacts[1] == "notebook/iris.html"
    records = json.loads(open(client.download_artifacts(run.info.run_id, "nbops/records.json")).read())
    assert records["classes"] == [0, 1, 2] and records["label"] == "tuned"
    assert "acc@val" in records and "acc@val" not in run.data.metrics
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "data/train.csv" and len(dataset_input.dataset.digest) == 32

    [version] = client.search_model_versions("name = 'iris-test'")
    assert version.run_id == run.info.run_id
    assert version.tags["nbops.git_sha"] == sha
    assert float(version.tags["metric.accuracy"]) == pytest.approx(run.data.metrics["accuracy"], rel=1e-5)

    # the executed notebook is readable by scrapbook, and holds the injected parameters
    import scrapbook

    output = project / tags["nbops.output"]
    scraps = scrapbook.read_notebook(str(output)).scraps
    assert scraps["accuracy"].data == pytest.approx(run.data.metrics["accuracy"])
    assert scraps["classes"].data == [0, 1, 2] and scraps["label"].data == "tuned"


def test_failed_gate_leaves_a_finished_run_without_a_model(project, mlflow_client, capsys):
    nb_path = classifier_notebook(project, gates=("accuracy >= 1.5",))
    assert main(["run", str(nb_path)]) == 0
    out = capsys.readouterr().out
    assert "gate 'accuracy >= 1.5' failed" in out and "not registered" in out
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["nbops.gates"] == "failed"
    assert client.search_model_versions("name = 'iris-test'") == []


def test_cell_error_fails_the_run_and_names_the_source_cell(project, mlflow_client, capsys):
    nb_path = write_notebook(project / "notebooks" / "boom.ipynb", [
        ("markdown", "# Boom"),
        ("code", "x = 1", ["parameters"]),
        ("code", "import nbops\nnbops.record('before', 1)"),
        ("code", "import mlflow\nfrom sklearn.dummy import DummyClassifier\n"
                 "mlflow.sklearn.log_model(DummyClassifier().fit([[0]], [0]), name='model',\n"
                 "                         pip_requirements=['scikit-learn'])"),
        ("code", "raise ValueError('boom')"),
        ("code", "print('never')"),
    ], {"model": {"name": "boom-model"}})
    code = main(["run", str(nb_path), "-p", "x=2"])
    out = capsys.readouterr().out
    assert code == 1
    # cell 5 of the source notebook (1-based over all cells; papermill's injected cell not counted)
    # is the third code cell
    assert "FAILED notebooks/boom.ipynb: cell 5: ValueError: boom" in out
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"before": 1.0}
    assert "ValueError: boom" in run.data.tags["nbops.error"]
    [artifact] = [a.path for a in client.list_artifacts(run.info.run_id, "notebook") if a.path.endswith(".ipynb")]
    executed = json.loads(open(client.download_artifacts(run.info.run_id, artifact)).read())
    assert any(o.get("ename") == "ValueError" for c in executed["cells"] for o in c.get("outputs", []))
    assert client.search_registered_models() == []  # a model was logged, but the run failed


def test_dead_kernel_fails_fast(project, mlflow_client, capsys):
    nb_path = write_notebook(project / "notebooks" / "die.ipynb", [
        ("code", "import os"),
        ("code", "os.write(2, b'last words of the kernel\\n')\nos._exit(1)"),
        ("code", "print('never')"),
    ])
    start = time.monotonic()
    assert main(["run", str(nb_path)]) == 1
    assert time.monotonic() - start < 30
    out = capsys.readouterr().out
    assert "FAILED notebooks/die.ipynb: cell 2: DeadKernel: the kernel died" in out
    log = re.search(r"kernel log: (\S+)", out)
    assert log and "last words of the kernel" in (project / log.group(1)).read_text()  # its stderr
    [run] = all_runs(mlflow_client())
    assert run.info.status == "FAILED"


def test_a_kernel_killed_without_a_word_says_so(project, mlflow_client, capsys):
    nb_path = write_notebook(project / "notebooks" / "killed.ipynb", [
        ("code", "import os, signal"),
        ("code", "os.kill(os.getpid(), signal.SIGKILL)"),
    ])
    assert main(["run", str(nb_path)]) == 1
    out = capsys.readouterr().out
    assert "cell 2: DeadKernel: the kernel died and wrote nothing to stderr (killed? out of memory?)" in out
    assert "kernel log" not in out and not list((project / "runs").rglob("*.kernel.log"))


@pytest.mark.parametrize("flags,expected", [
    (["--timeout", "3"], "cell 2: NotebookTimeout: the notebook ran longer than 3 s"),
    (["--cell-timeout", "2"], "cell 2: CellTimeout: a cell ran longer than 2 s"),
])
def test_timeouts_end_the_run_as_failed(project, mlflow_client, capsys, flags, expected):
    nb_path = write_notebook(project / "notebooks" / "slow.ipynb", [
        ("code", "import time"),
        ("code", "time.sleep(120)"),
    ])
    start = time.monotonic()
    assert main(["run", str(nb_path), *flags]) == 1
    assert time.monotonic() - start < 30
    assert expected in capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FAILED"
    assert any(a.path.endswith(".ipynb") for a in client.list_artifacts(run.info.run_id, "notebook"))


def test_what_a_kernel_leaves_in_its_temp_folder_goes_with_it(project, capsys):
    """nbops kills each kernel once its last cell has replied, so what the kernel meant to remove
    at exit (MLflow's scratch folders, an upstream download on a server, atexit handlers) never
    is: each kernel's TMPDIR is a folder in its own, removed after it (and swept with it after a
    killed nbops: test_kernel_procs)."""
    nb_path = write_notebook(project / "notebooks" / "scratch.ipynb", [
        ("code", "import atexit, pathlib, shutil, tempfile\n"
                 "made = tempfile.mkdtemp(prefix='left-')\n"
                 "pathlib.Path(made, 'big.bin').write_bytes(b'x' * 1024)\n"
                 "atexit.register(shutil.rmtree, made, True)  # never runs: the kernel is killed\n"
                 "pathlib.Path('../made.txt').write_text(made)"),
    ])
    assert main(["run", str(nb_path)]) == 0, capsys.readouterr()
    made = Path((project / "made.txt").read_text())
    kernels = made.parent.parent  # the kernel's own folder (run/kernel_procs.py), its TMPDIR inside
    assert made.parent.name == "tmp" and kernels.name.startswith("nbops-kernel-"), made
    assert not kernels.exists(), sorted(kernels.rglob("*"))


def test_no_track_logs_nothing_anywhere(project, capsys):
    nb_path = write_notebook(project / "notebooks" / "plain.ipynb", [
        ("code", "import mlflow, nbops\nmlflow.log_metric('m', 1.0)\nnbops.record('r', 2)"),
    ])
    assert main(["run", str(nb_path), "--no-track"]) == 0
    assert "(not tracked)" in capsys.readouterr().out
    leftovers = [p for p in project.rglob("*") if p.name in ("mlflow.db", "mlruns")]
    assert leftovers == []


def test_notebook_can_start_its_own_run_and_records_land_in_nbops_run(project, mlflow_client, capsys):
    nb_path = write_notebook(project / "notebooks" / "own.ipynb", [
        ("code", "import mlflow\nwith mlflow.start_run() as r:\n    mlflow.log_metric('inner', 3.0)\n"
                 "import nbops\nnbops.record('run_id', r.info.run_id)"),
    ])
    assert main(["run", str(nb_path)]) == 0, capsys.readouterr()
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.data.metrics["inner"] == 3.0 and run.info.status == "FINISHED"
    records = json.loads(open(client.download_artifacts(run.info.run_id, "nbops/records.json")).read())
    assert records["run_id"] == run.info.run_id


def test_a_long_notebook_is_not_saved_at_every_cell(project, monkeypatch):
    """papermill saves the whole notebook at the start and the end of every cell (O(cells^2): a
    5,000-cell notebook ran 83 cells in two minutes); nbops's saves are throttled, so the cost of
    a cell does not grow with the notebook. Every write of the run is counted; the executed
    notebook is still complete (bench/bench_cells.py measures the time)."""
    from papermill.iorw import papermill_io

    writes: list[str] = []
    real_write = papermill_io.write
    monkeypatch.setattr(papermill_io, "write",
                        lambda buf, path, *a, **kw: (writes.append(path), real_write(buf, path, *a, **kw))[1])
    cells = 400
    nb = write_notebook(project / "notebooks" / "long.ipynb", [("code", f"x = {i}") for i in range(cells)])
    start = time.monotonic()
    assert main(["run", str(nb), "--no-track", "--quiet"]) == 0
    took = time.monotonic() - start
    (executed,) = (project / "runs" / "long").glob("*.ipynb")
    counts = [c["execution_count"] for c in json.loads(executed.read_text())["cells"]]
    assert counts == list(range(1, cells + 1))
    # papermill alone: 2 * 400 + 2 writes; throttled: the first, the last, at most one a second
    assert 2 <= len(writes) <= took + 3, (len(writes), took)
