"""The fence around what nbops's papermill engine (run/papermill_engine.py) and its output handler
(run/saving.py) use of papermill, nbclient and jupyter_client that they do not promise.

Private or undocumented, and why nbops uses it:

- `papermill.execute_notebook(**engine_kwargs)` hands keyword arguments it does not know to the
  engine's `execute_managed_notebook` (documented only as "arbitrary keyword arguments to pass
  to the notebook engine"): nbops passes its own per-run state that way, the `ENGINE_KWARGS`
  below, since papermill's API has no other door into the engine. Papermill's own
  `NBClientEngine.execute_managed_notebook` parameters (`nb_man`, `kernel_name`, `log_output`,
  `stdout_file`, `stderr_file`, `start_timeout`, `execution_timeout`) are overridden with the
  same names.
- `papermill.clientwrap.PapermillNotebookClient` and `papermill.utils.merge_kwargs` /
  `remove_args` (internal modules): the engine builds papermill's client itself, to give the
  kernel its environment, working folder and stderr, and to hook the notebook's start.
- the execution manager's `cell_start(cell, cell_index, **kw)`, `save` and `notebook_complete`
  (papermill internals): wrapped to report progress and to throttle saves.
- `papermill.iorw.LocalHandler` / `papermill_io.register`: a handler for absolute paths that
  never chdirs the process.
- nbclient's `NotebookClient.on_notebook_start` hook, `kc`, `async_wait_for_reply`, and
  jupyter_client's `KernelManager.provisioner.process` (the kernel's Popen, undocumented): the
  late environment is set in the kernel before the first cell, and the watchdog kills the
  kernel's process (`kernel_process`).

`missing()` names whatever of this the installed versions lack; tests/unit/
test_fence_papermill.py asserts it names nothing and that papermill really hands
`ENGINE_KWARGS` to an engine, so a release that moves them fails that test (`make test`, the
version matrix) rather than a user's run.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

# the keyword arguments run/engine.py passes through papermill.execute_notebook to its engine
# (run/papermill_engine.py takes them)
ENGINE_KWARGS = ("nbops_env", "nbops_late_env", "nbops_secrets", "nbops_deadline", "nbops_state",
                 "nbops_kernel_stderr", "nbops_cwd", "nbops_on_cell", "nbops_log")
# papermill's engine parameters the override keeps, in papermill's order
ENGINE_PARAMS = ("nb_man", "kernel_name", "log_output", "stdout_file", "stderr_file",
                 "start_timeout", "execution_timeout")


def engine_parts() -> tuple[Any, Any, Any, Any]:
    """(NBClientEngine, PapermillNotebookClient, merge_kwargs, remove_args), imported now."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.utils import merge_kwargs, remove_args

    return NBClientEngine, PapermillNotebookClient, merge_kwargs, remove_args


def kernel_process(client: Any) -> Any:
    """The kernel's process (a Popen) of nbclient's CLIENT, None while it has none."""
    return getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)


def _params(func: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(func).parameters.values())


def _var_keyword(func: Any) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in _params(func))


def missing() -> list[str]:
    """What this module's users rely on that the installed papermill, nbclient and
    jupyter_client lack: [] when all is there."""
    gone: list[str] = []

    def need(module: str, *names: str) -> Any:
        try:
            found: Any = importlib.import_module(module)
        except ImportError:
            gone.append(module)
            return None
        for name in names:
            found = getattr(found, name, None)
            if found is None:
                gone.append(f"{module}.{'.'.join(names)}")
                return None
        return found

    execute = need("papermill.execute", "execute_notebook")
    if execute is not None and not _var_keyword(execute):
        gone.append("papermill.execute_notebook(**engine_kwargs)")
    managed = need("papermill.engines", "NBClientEngine", "execute_managed_notebook")
    if managed is not None:
        names = tuple(p.name for p in _params(managed) if p.kind is not p.VAR_KEYWORD)
        if names != ENGINE_PARAMS or not _var_keyword(managed):
            gone.append(f"NBClientEngine.execute_managed_notebook{ENGINE_PARAMS + ('**kwargs',)} "
                        f"(found {names})")
    need("papermill.engines", "papermill_engines", "register")
    need("papermill.utils", "merge_kwargs")
    need("papermill.utils", "remove_args")
    manager = need("papermill.engines", "NotebookExecutionManager")
    if manager is not None:
        for name in ("save", "notebook_complete"):
            if not callable(getattr(manager, name, None)):
                gone.append(f"NotebookExecutionManager.{name}")
        start = getattr(manager, "cell_start", None)
        if start is None or [p.name for p in _params(start)][:3] != ["self", "cell", "cell_index"]:
            gone.append("NotebookExecutionManager.cell_start(cell, cell_index, **kwargs)")
    need("papermill.iorw", "LocalHandler", "cwd")
    need("papermill.iorw", "LocalHandler", "write")
    need("papermill.iorw", "papermill_io", "register")
    client = need("papermill.clientwrap", "PapermillNotebookClient")
    if client is not None:
        if "on_notebook_start" not in client.class_traits():
            gone.append("nbclient NotebookClient.on_notebook_start")
        for name in ("async_wait_for_reply", "execute"):
            if not callable(getattr(client, name, None)):
                gone.append(f"nbclient NotebookClient.{name}")
    kernel_manager = need("jupyter_client.manager", "KernelManager")
    if kernel_manager is not None and "provisioner" not in dir(kernel_manager):
        gone.append("jupyter_client KernelManager.provisioner")
    provisioner = need("jupyter_client.provisioning.local_provisioner", "LocalProvisioner")
    if provisioner is not None and not hasattr(provisioner, "process"):
        gone.append("jupyter_client LocalProvisioner.process")
    return gone
