"""Loaded in every kernel nbops starts (IPKernelApp.exec_lines): points the notebook's MLflow calls
at the project's store.

Two cases, both decided when the notebook imports mlflow (importing mlflow here would cost seconds
in every kernel, so an import hook waits for the notebook to do it):

- `nbops run` (MLFLOW_RUN_ID set): MLflow 3 no longer starts a run implicitly in `log_model`, so
  the hook resumes nbops's run; a notebook's own bare `mlflow.start_run()` gets that same run back
  instead of MLflow's "run already active" error.
- `nbops lab` (NBOPS_PROJECT_ROOT set, and Jupyter's JPY_SESSION_NAME naming the notebook): a run
  by hand goes to the project's store (MLFLOW_TRACKING_URI, set by the lab) in the notebook's
  experiment (`notebooks/<stem>`, the name `nbops run` uses), and every run it creates is tagged
  `nbops.interactive=true` with the git sha and an honest dirty flag (a never-committed or
  modified notebook is dirty), read when the run starts.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import subprocess
import sys

INTERACTIVE_TAG = "nbops.interactive"


_STATE: dict[str, object] = {"run_id": None, "pending": []}


def _keep_run(mlflow, ours: str) -> None:
    """A bare `mlflow.start_run()` in the notebook gets the kernel's run back, not MLflow's
    "run already active" error."""
    original = mlflow.start_run

    def start_run(run_id=None, *args, nested=False, **kwargs):
        active = mlflow.active_run()
        if active is not None and not nested and active.info.run_id == ours and run_id in (None, ours):
            return active
        return original(run_id, *args, nested=nested, **kwargs)

    start_run.__doc__ = original.__doc__
    mlflow.start_run = start_run


def _resume(mlflow, run_id: str) -> None:
    original = mlflow.start_run
    _keep_run(mlflow, run_id)
    try:
        if mlflow.active_run() is None:
            original(run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - never break the user's import
        print(f"nbops: could not resume MLflow run {run_id}: {exc}", file=sys.stderr)


def lab_notebook(environ=None, session_path=None) -> tuple[str, str] | None:
    """(project root, notebook path relative to it, '/'-separated) in a kernel of `nbops lab`.
    SESSION_PATH: the server's current path of this kernel's notebook (renamed since the kernel
    started); Jupyter's JPY_SESSION_NAME says where it was when the kernel started."""
    env = os.environ if environ is None else environ
    root, session = env.get("NBOPS_PROJECT_ROOT"), session_path or env.get("JPY_SESSION_NAME")
    if not root or not session or env.get("MLFLOW_RUN_ID"):
        return None
    path = os.path.normpath(os.path.join(root, session))  # absolute: join keeps it
    rel = os.path.relpath(path, root)
    if rel.startswith(".."):  # a notebook outside the project: its own name
        rel = os.path.basename(path)
    return root, rel.replace(os.sep, "/")


def session_path(environ=None) -> str | None:
    """The notebook's path now, from the lab's sessions API (this kernel's id is in its
    connection file's name); None when the lab cannot say."""
    env = os.environ if environ is None else environ
    url, token = env.get("NBOPS_LAB_URL"), env.get("NBOPS_LAB_TOKEN", "")
    if not url:
        return None
    try:
        import json
        import urllib.request

        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
        kernel_id = name.removeprefix("kernel-").removesuffix(".json")
        request = urllib.request.Request(url.rstrip("/") + "/api/sessions",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - the lab's own URL
            sessions = json.load(response)
        return next((s["path"] for s in sessions if s.get("kernel", {}).get("id") == kernel_id), None)
    except Exception as exc:  # noqa: BLE001 - JPY_SESSION_NAME is the answer then
        print(f"nbops: could not ask the lab for this notebook's path: {exc}", file=sys.stderr)
        return None


def _git(root: str, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_tags(root: str, rel: str) -> dict[str, str]:
    """The sha of HEAD and whether the run cannot be reproduced from it: tracked files changed, or
    the notebook modified or never committed."""
    sha = _git(root, "rev-parse", "HEAD") or "unknown"
    tree = _git(root, "status", "--porcelain", "--untracked-files=no")
    mine = _git(root, "status", "--porcelain", "--untracked-files=all", "--", rel)
    committed = _git(root, "ls-files", "--error-unmatch", "--", rel) is not None
    dirty = sha == "unknown" or bool(tree) or bool(mine) or not committed
    return {"nbops.git_sha": sha, "nbops.git_dirty": str(dirty).lower()}


def _interactive(mlflow, root: str, rel: str) -> None:
    from mlflow.tracking.context.abstract_context import RunContextProvider
    from mlflow.tracking.context.registry import _run_context_provider_registry

    class LabRunContext(RunContextProvider):
        def in_context(self) -> bool:
            return True

        def tags(self) -> dict[str, str]:
            from nbops import __version__

            return {INTERACTIVE_TAG: "true", "nbops.notebook": rel, "mlflow.source.name": rel,
                    "nbops.version": __version__, **git_tags(root, rel)}

    _run_context_provider_registry.register(LabRunContext)
    name = rel.removesuffix(".ipynb")
    client = mlflow.MlflowClient()
    cwd = os.getcwd()
    try:  # a store created now puts MLflow's Default experiment in the project's ./mlruns
        os.chdir(root)
        exp = client.get_experiment_by_name(name)
    finally:
        os.chdir(cwd)
    if exp is None:
        # artifacts beside the store, as `nbops run` puts them; never MLflow's ./mlruns in the
        # kernel's working folder
        location = os.environ.get("NBOPS_ARTIFACT_LOCATION") or None
        try:
            exp_id = client.create_experiment(
                name, artifact_location=location,
                tags={"mlflow.experimentKind": "custom_model_development"})
        except Exception:  # noqa: BLE001 - created meanwhile by a run
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    # one run per kernel session, ended (FINISHED) by MLflow's exit hook when the kernel stops
    run = mlflow.active_run() or mlflow.start_run()
    _keep_run(mlflow, run.info.run_id)
    _STATE["run_id"] = run.info.run_id
    pending, _STATE["pending"] = _STATE["pending"], []
    for name, value in pending:  # type: ignore[attr-defined]
        _metric(name, value)


def _metric(name: str, value: float) -> None:
    mlflow = sys.modules.get("mlflow")
    if mlflow is None or _STATE["run_id"] is None:
        _STATE["pending"].append((name, value))  # type: ignore[attr-defined]
        return
    try:
        mlflow.log_metric(name, value, run_id=_STATE["run_id"])
    except Exception as exc:  # noqa: BLE001 - a record never fails the cell
        print(f"nbops: could not log {name} to MLflow: {exc}", file=sys.stderr)


def _record_metrics() -> None:
    """In the lab, `nbops.record(name, number)` (the templates' metrics) is logged to the
    interactive run too, as `nbops run` logs the records of a tracked run."""
    import importlib

    module = importlib.import_module("nbops.record")
    original = getattr(module, "record")  # noqa: B009 - the package attribute shadows it for mypy
    if getattr(original, "nbops_lab", False):
        return

    def record(name, value):
        original(name, value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            _metric(name, float(value))

    record.__doc__ = original.__doc__
    record.nbops_lab = True  # type: ignore[attr-defined]
    setattr(module, "record", record)  # noqa: B010
    package = sys.modules.get("nbops")
    if package is not None:
        setattr(package, "record", record)  # noqa: B010


def _activate(mlflow) -> None:
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        _resume(mlflow, run_id)
        return
    found = lab_notebook(session_path=session_path()) if lab_notebook() is not None else None
    if found is None:
        return
    try:
        _interactive(mlflow, *found)
    except Exception as exc:  # noqa: BLE001 - never break the user's import
        print(f"nbops: could not point MLflow at the project's store: {exc}", file=sys.stderr)


class _MlflowImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "mlflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_activate(module):
            exec_module(module)
            _activate(module)

        loader.exec_module = exec_then_activate
        return spec


def install() -> None:
    if lab_notebook() is not None:
        _record_metrics()
    if "mlflow" in sys.modules:
        _activate(sys.modules["mlflow"])
    elif not any(isinstance(f, _MlflowImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _MlflowImportHook())


install()
