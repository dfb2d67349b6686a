"""Loaded in every tracked kernel (IPKernelApp.exec_lines): hands nbops's MLflow run to the notebook.

MLflow 3 no longer starts a run implicitly in `log_model`, so MLFLOW_RUN_ID alone does not put
a notebook's `mlflow.sklearn.log_model(...)` in nbops's run. Importing mlflow here would cost
seconds in every kernel, so instead an import hook waits for the notebook to import mlflow and
then resumes the run. A notebook's own bare `mlflow.start_run()` then gets that same run back
instead of MLflow's "run already active" error.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys


def _activate(mlflow) -> None:
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    original = mlflow.start_run

    def start_run(run_id=None, *args, nested=False, **kwargs):
        active = mlflow.active_run()
        ours = os.environ.get("MLFLOW_RUN_ID")
        if active is not None and not nested and active.info.run_id == ours and run_id in (None, ours):
            return active
        return original(run_id, *args, nested=nested, **kwargs)

    start_run.__doc__ = original.__doc__
    mlflow.start_run = start_run
    try:
        if mlflow.active_run() is None:
            original(run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - never break the user's import
        print(f"nbops: could not resume MLflow run {run_id}: {exc}", file=sys.stderr)


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
    if "mlflow" in sys.modules:
        _activate(sys.modules["mlflow"])
    elif not any(isinstance(f, _MlflowImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _MlflowImportHook())


install()
