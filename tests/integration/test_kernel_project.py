"""Issue 26: a kernel started outside `nbops lab` (plain `jupyter lab`, VS Code, `jupyter nbconvert
--execute`) finds its project itself and logs an interactive run to the project's store, never to
a second store beside the notebook (notebooks/mlflow.db, notebooks/mlruns). Real kernels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, native_kernels

pytestmark = [pytest.mark.timeout(600)]
NBOPS = [sys.executable, "-m", "nbops"]
STRAYS = ("mlflow.db", "mlruns", "mlartifacts")


@pytest.fixture(autouse=True)
def _native_python3(monkeypatch):
    """The kernels these tests start (jupyter_client's, looked up in this process) end gracefully:
    ipykernel's own python3 kernelspec, so coverage saves what they ran (tests/conftest.py)."""
    native = native_kernels(dict(os.environ)).get("JUPYTER_PATH")
    if native is None:
        monkeypatch.delenv("JUPYTER_PATH", raising=False)
    else:
        monkeypatch.setenv("JUPYTER_PATH", native)


def _env() -> dict[str, str]:
    """A data scientist's shell: no MLflow or nbops variables, not CI, not inside a lab."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JPY_", "NBOPS_"))
           and k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return native_kernels(env)  # these kernels end gracefully: coverage saves what they ran


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kp") / "proj"
    done = subprocess.run([*NBOPS, "init", str(root)], capture_output=True, text=True, check=False,
                          env=_env())
    assert done.returncode == 0, done.stderr
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "test")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def _runs(root: Path, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    db = root / "mlflow.db"
    if not db.exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _strays(root: Path) -> list[Path]:
    return [p for p in (root / "notebooks").rglob("*") if p.name in STRAYS]


@pytest.mark.parametrize("where", ["notebooks", "root"])
def test_nbconvert_execute_logs_to_the_projects_store(project, tmp_path, where):
    before = {r.info.run_id for r in _runs(project, "notebooks/example")}
    cwd, path = (project / "notebooks", "example.ipynb") if where == "notebooks" else \
        (project, "notebooks/example.ipynb")
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                           "--execute", path, "--output-dir", str(tmp_path)],
                          cwd=cwd, env=_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _strays(project) == []
    new = [r for r in _runs(project, "notebooks/example") if r.info.run_id not in before]
    assert len(new) == 1, [r.info.run_id for r in new]
    [run] = new
    tags, params = run.data.tags, run.data.params
    assert run.info.status == "FINISHED"
    assert tags["nbops.interactive"] == "true"
    assert tags["nbops.notebook"] == "notebooks/example.ipynb"
    assert tags["nbops.git_sha"] == git(project, "rev-parse", "HEAD")
    assert run.info.run_name == "example"  # as `nbops run` names a run of the defaults
    assert params["dataset"] == "iris" and params["C"] == "1.0"  # the parameters cell's values
    assert run.data.metrics["accuracy"] > 0.5  # kit's records
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_experiment(
        run.info.experiment_id)
    assert Path(exp.artifact_location.removeprefix("file://")) == project / "mlruns"


def _kernel_run(cwd: Path, code: str) -> str:
    """CODE in a fresh python3 kernel started in CWD; its stderr. The kernel stops gracefully
    (MLflow's exit hook ends its run)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd), env=_env())
    errors: list[str] = []
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)

        def hook(msg):
            content = msg["content"]
            if msg["msg_type"] == "stream" and content["name"] == "stderr":
                errors.append(content["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(content["traceback"]))

        reply = kc.execute_interactive(code, output_hook=hook, timeout=240)
        assert reply["content"]["status"] == "ok", errors
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
    return "".join(errors)


def test_a_kernel_in_a_subfolder_finds_its_project(project):
    sub = project / "notebooks" / "scratch" / "deep"
    sub.mkdir(parents=True)
    before = {r.info.run_id for r in _runs(project, "interactive")}
    stderr = _kernel_run(sub, "import nbops\nimport mlflow\nmlflow.log_metric('m', 1.0)\n"
                              "nbops.record('r', 2.0)\n")
    assert "no nbops project" not in stderr, stderr
    assert _strays(project) == []
    [run] = [r for r in _runs(project, "interactive") if r.info.run_id not in before]
    assert run.data.tags["nbops.interactive"] == "true"
    assert run.data.metrics == {"m": 1.0, "r": 2.0}
    assert run.info.status == "FINISHED"


def test_outside_any_project_the_kernel_says_where_it_logs(tmp_path):
    stderr = _kernel_run(tmp_path, "import nbops\nimport mlflow\nimport mlflow\n")
    assert stderr.count("nbops: no nbops project") == 1, stderr
    assert "MLflow logs to" in stderr
    assert not any(p.name in STRAYS for p in tmp_path.iterdir())


def test_import_nbops_outside_a_kernel_loads_no_kernel_hook():
    code = "import sys, nbops; print('nbops._kernel' in sys.modules, 'subprocess' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_untracked_run_never_logs_to_the_projects_store(project, tmp_path):
    """`nbops run --no-track` (and `pytest --nbops`): a notebook that imports nbops and logs to
    MLflow writes to the kernel's scratch store; the project's store gets no run, RUNNING or not."""
    from tests.conftest import write_notebook

    write_notebook(project / "notebooks" / "untracked.ipynb",
                   [("code", "import nbops, mlflow\nmlflow.log_metric('m', 1.0)\nnbops.record('score', 0.5)")])
    before = {r.info.run_id for r in _runs(project, "notebooks/untracked")}
    done = subprocess.run([*NBOPS, "run", "notebooks/untracked.ipynb", "--no-track", "--quiet"], cwd=project,
                          env=_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r.info.run_id for r in _runs(project, "notebooks/untracked")} == before
    assert _strays(project) == []
