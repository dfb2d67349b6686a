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

Anywhere else (plain `jupyter lab`, VS Code, `jupyter nbconvert --execute`, a kernel started in
a subfolder), `import nbops` in a kernel installs the same hook (nbops/__init__.py), and the
project is found when the notebook imports mlflow: the nearest folder at or above the notebook's
(else the kernel's working folder) whose pyproject.toml has [tool.nbops]. The project's store,
experiment, parameter values and run name come from `python -m nbops.lab.interactive`, asked
once (the kernel side imports nothing of the framework); no MLflow store is made beside the
notebook. Outside any project the kernel says once where MLflow logs.
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
    "run already active" error (replaced through the fence: nbops/_mlflow_private.py)."""
    from nbops._mlflow_private import replace_start_run

    replace_start_run(mlflow, ours)


def _resume(mlflow, run_id: str) -> None:
    original = mlflow.start_run
    _keep_run(mlflow, run_id)
    try:
        if mlflow.active_run() is None:
            original(run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - not mapped: kernel side, never break the user's import
        print(f"nbops: could not resume MLflow run {run_id}: {_masked(str(exc))}", file=sys.stderr)


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
    mine = _git(root, "status", "--porcelain", "--untracked-files=all", "--", rel) if rel else ""
    committed = not rel or _git(root, "ls-files", "--error-unmatch", "--", rel) is not None
    dirty = sha == "unknown" or bool(tree) or bool(mine) or not committed
    return {"nbops.git_sha": sha, "nbops.git_dirty": str(dirty).lower()}


def _ask_project(root: str, notebook: str | None) -> dict:
    """The project's answer for this kernel's run (nbops/lab/interactive.py), in a child process."""
    import json

    request = json.dumps({"root": root, "notebook": notebook or "", "values": _namespace_values()},
                         default=str)
    done = subprocess.run([sys.executable, "-m", "nbops.lab.interactive"], input=request, cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"nbops exited {done.returncode}") from None
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer


def _namespace_values() -> dict[str, object]:
    """The notebook's plain values (the parameters cell's among them), JSON-safe and small."""
    try:
        from IPython import get_ipython

        namespace = get_ipython().user_ns
    except Exception:  # noqa: BLE001 - not in IPython: the notebook's defaults then
        return {}
    plain = (bool, int, float, str, type(None), list, tuple, dict)
    return {k: v for k, v in list(namespace.items())
            if not k.startswith("_") and k not in ("In", "Out") and isinstance(v, plain)
            and (not isinstance(v, (list, tuple, dict, str)) or len(v) <= 1000)}


def _experiment_id(mlflow, root: str, name: str, location: str | None) -> str:
    cwd = os.getcwd()
    try:  # a store created now puts MLflow's Default experiment in the project's ./mlruns
        os.chdir(root)
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(name)
    finally:
        os.chdir(cwd)
    if exp is not None:
        return exp.experiment_id
    try:  # artifacts beside the store, as `nbops run` puts them; never ./mlruns beside the kernel
        return client.create_experiment(name, artifact_location=location or None,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # noqa: BLE001 - not mapped: kernel side (imports nothing of nbops.core); created meanwhile by a run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _interactive(mlflow, root: str, notebook: str | None) -> None:
    from nbops._mlflow_private import register_run_tags

    answer = _ask_project(root, notebook)
    mlflow.set_tracking_uri(answer["tracking_uri"])
    mlflow.set_registry_uri(answer["registry_uri"])
    rel = answer["notebook"]

    def tags() -> dict[str, str]:
        from nbops import __version__

        where = {"nbops.notebook": rel, "mlflow.source.name": rel} if rel else {}
        return {INTERACTIVE_TAG: "true", **where, "nbops.version": __version__,
                **git_tags(root, rel)}

    register_run_tags(tags)  # MLflow's private registry of run tags, behind the fence
    location = os.environ.get("NBOPS_ARTIFACT_LOCATION") or answer["artifact_location"]
    mlflow.set_experiment(experiment_id=_experiment_id(mlflow, root, answer["experiment"], location))
    # one run per kernel session, ended (FINISHED) by MLflow's exit hook when the kernel stops
    run = mlflow.active_run()
    if run is None:
        run = mlflow.start_run(run_name=answer["run_name"] or None)
        if answer["params"]:
            mlflow.log_params(answer["params"])
    _keep_run(mlflow, run.info.run_id)
    _STATE["run_id"] = run.info.run_id
    pending, _STATE["pending"] = _STATE["pending"], []
    for name, value in pending:  # type: ignore[attr-defined]
        _metric(name, value)


def _metric(name: str, value: float) -> None:
    mlflow = sys.modules.get("mlflow")
    if _STATE.get("off"):  # no project: MLflow's own defaults, nothing logged by nbops
        return
    if mlflow is None or _STATE["run_id"] is None:
        _STATE["pending"].append((name, value))  # type: ignore[attr-defined]
        return
    try:
        mlflow.log_metric(name, value, run_id=_STATE["run_id"])
    except Exception as exc:  # noqa: BLE001 - not mapped: kernel side, a record never fails the cell
        print(f"nbops: could not log {name} to MLflow: {_masked(str(exc))}", file=sys.stderr)


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


def project_root(start: str) -> str | None:
    """The nearest folder at or above START whose pyproject.toml has a [tool.nbops] table."""
    import re

    table = re.compile(r"^\s*\[\s*tool\s*\.\s*nbops\s*[\].]", re.M)
    folder = os.path.abspath(start)
    while True:
        try:
            with open(os.path.join(folder, "pyproject.toml"), encoding="utf-8") as f:
                if table.search(f.read()):
                    return folder
        except (OSError, UnicodeDecodeError):
            pass
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _launcher_notebook(cwd: str) -> str | None:
    """`jupyter nbconvert --execute X.ipynb`, papermill: the notebook named on the command line of
    the process that started this kernel, in this kernel's working folder."""
    try:
        import psutil  # ipykernel's dependency

        parent = psutil.Process().parent()
        argv, where = parent.cmdline(), parent.cwd()
    except Exception:  # noqa: BLE001 - no parent to ask
        return None
    for arg in argv[1:]:
        path = os.path.realpath(os.path.join(where, arg.split("=", 1)[-1]))
        if path.endswith(".ipynb") and os.path.isfile(path) and os.path.dirname(path) == cwd:
            return path
    return None


def notebook_path(environ=None) -> str | None:
    """This kernel's notebook, absolute: Jupyter's JPY_SESSION_NAME (JupyterLab, Notebook),
    VS Code's `__vsc_ipynb_file__`, or the command line of the kernel's parent (nbconvert)."""
    env = os.environ if environ is None else environ
    cwd = os.path.realpath(os.getcwd())
    session = env.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):  # absolute since jupyter_server 2; an API path before
        return session if os.path.isabs(session) else os.path.join(cwd, os.path.basename(session))
    try:
        from IPython import get_ipython

        vscode = get_ipython().user_ns.get("__vsc_ipynb_file__")
    except Exception:  # noqa: BLE001 - not in IPython
        vscode = None
    if isinstance(vscode, str) and vscode.endswith(".ipynb"):
        return vscode
    return _launcher_notebook(cwd)


def _where() -> tuple[str | None, str | None, str]:
    """(project root or None, notebook path or None, the folder the search started from)."""
    found = lab_notebook(session_path=session_path()) if lab_notebook() is not None else None
    if found is not None:
        root, rel = found
        return root, os.path.join(root, rel), root
    notebook = notebook_path()
    start = os.path.dirname(notebook) if notebook else os.getcwd()
    return project_root(start), notebook, start


def _masked(uri: str) -> str:
    import re

    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", uri)


def _activate(mlflow) -> None:
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        _resume(mlflow, run_id)
        return
    root, notebook, start = _where()
    if root is None:
        _STATE["off"], _STATE["pending"] = True, []
        print(f"nbops: no nbops project (a pyproject.toml with [tool.nbops]) at or above {start}: "
              f"MLflow logs to {_masked(mlflow.get_tracking_uri())}", file=sys.stderr)
        return
    try:
        _interactive(mlflow, root, notebook)
    except Exception as exc:  # noqa: BLE001 - not mapped: kernel side, never break the user's import
        print(f"nbops: could not point MLflow at the project's store: {_masked(str(exc))}", file=sys.stderr)


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (not a server or a test that imported ipykernel)."""
    app = sys.modules.get("ipykernel.kernelapp")
    try:
        return app is not None and bool(app.IPKernelApp.initialized())
    except Exception:  # noqa: BLE001 - an ipykernel without it: not ours to judge
        return False


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
    # a kernel of `nbops run --no-track` or of `pytest --nbops`: MLflow logs to the scratch store
    # nbops gave it (MLFLOW_TRACKING_URI), never to the project's store
    if not in_kernel() or os.environ.get("NBOPS_NO_TRACK"):
        return
    if not os.environ.get("MLFLOW_RUN_ID"):
        _record_metrics()
    if "mlflow" in sys.modules:
        _activate(sys.modules["mlflow"])
    elif not any(isinstance(f, _MlflowImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _MlflowImportHook())


install()
