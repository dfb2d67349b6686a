"""nbops's papermill engine: papermill's nbclient engine, plus an environment per kernel (the
MLflow run id, possibly decided while the kernel starts), a whole-notebook deadline, the kernel's
stderr in a log file, its working folder, per-cell progress and throttled saves.

engine.py registers it (built lazily: papermill is imported when the first notebook runs) and
hands it nbops's own keyword arguments through `papermill.execute_notebook` (papermill_private.
ENGINE_KWARGS, the fence around what of papermill this relies on).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nbops.run.kernel_procs import KernelProcs
from nbops.run.papermill_private import kernel_process
from nbops.run.saving import Saves
from nbops.run.secret_params import read_secrets_from_env
from nbops.run.watchdog import watchdog


@dataclass
class EngineOptions:
    """What engine.py hands the engine for one notebook (papermill_private.ENGINE_KWARGS)."""

    env: dict[str, str] | None = None  # the kernel's whole environment
    late_env: Any = None  # a callable: more environment once the kernel is up, before the first cell
    secrets: tuple[str, ...] = ()  # the secret parameters set, read from the kernel's environment
    deadline: float | None = None  # seconds for the whole notebook
    state: dict[str, Any] = field(default_factory=dict)  # what the watchdog noted, for engine.py
    kernel_stderr: Any = None  # a file for the kernel process's stderr
    cwd: str | None = None  # the kernel's working folder
    on_cell: Any = None  # called with (cell number, cells) as each cell starts
    log: Any = None  # where log_output sends a cell's output


def _pop_options(kwargs: dict[str, Any]) -> EngineOptions:
    """nbops's keyword arguments, taken out of what papermill passed through."""
    return EngineOptions(
        env=kwargs.pop("nbops_env", None),
        late_env=kwargs.pop("nbops_late_env", None),
        secrets=kwargs.pop("nbops_secrets", ()),
        deadline=kwargs.pop("nbops_deadline", None),
        state=kwargs.pop("nbops_state", {}),
        kernel_stderr=kwargs.pop("nbops_kernel_stderr", None),
        cwd=kwargs.pop("nbops_cwd", None),
        on_cell=kwargs.pop("nbops_on_cell", None),
        log=kwargs.pop("nbops_log", None),
    )


@functools.cache
def engine_class():  # untyped: papermill (a base class of type Any here) ships no types
    """papermill's nbclient engine with nbops's execute_managed_notebook (built lazily)."""
    from nbops.run.papermill_private import engine_parts  # papermill's internals, fenced

    NBClientEngine, _, _, _ = engine_parts()

    class NbopsEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(  # papermill's parameters, names and defaults (ENGINE_PARAMS)
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            **kwargs,
        ):
            options = _pop_options(kwargs)
            _prepare_manager(nb_man, options)
            final = _client_kwargs(kwargs, options, kernel_name=kernel_name, log_output=log_output,
                                   stdout_file=stdout_file, stderr_file=stderr_file,
                                   start_timeout=start_timeout, execution_timeout=execution_timeout)
            return _execute(nb_man, final, kernel_name, options)

    return NbopsEngine


def _prepare_manager(nb_man: Any, options: EngineOptions) -> None:
    """papermill's execution manager: secrets read from the kernel's environment, saves
    throttled, each cell reported as papermill starts it."""
    if options.secrets:  # the saved notebook reads them from the kernel's environment
        read_secrets_from_env(nb_man.nb, options.secrets)
    Saves(nb_man)  # progressive saves throttled: per-cell cost independent of the size
    on_cell = options.on_cell
    if on_cell is not None:  # report each cell as papermill starts it
        cell_start, total = nb_man.cell_start, len(nb_man.nb.cells)

        def reporting_cell_start(cell, cell_index=None, **kw):
            on_cell(cell_index + 1 if cell_index is not None else 0, total)
            return cell_start(cell, cell_index, **kw)

        nb_man.cell_start = reporting_cell_start


def _client_kwargs(kwargs: dict[str, Any], options: EngineOptions, *, kernel_name: str, log_output: bool,
                   stdout_file: Any, stderr_file: Any, start_timeout: float,
                   execution_timeout: float | None) -> dict[str, Any]:
    """What papermill's notebook client is built with (papermill's own engine, plus the log,
    an immediate shutdown and nbops's kernel-side hook)."""
    from nbops.run.papermill_private import engine_parts  # papermill's internals, fenced

    _, _, merge_kwargs, remove_args = engine_parts()
    kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
    final = merge_kwargs(
        kwargs,
        timeout=execution_timeout,
        startup_timeout=start_timeout,
        kernel_name=kernel_name,
        log=options.log or logging.getLogger("nbops.kernel"),
        log_output=log_output,
        stdout_file=stdout_file,
        stderr_file=stderr_file,
        # Every output has arrived when the last cell replies, and each kernel is used
        # once: kill it rather than ask it to shut down. The graceful path sometimes
        # waits ~3.3 s for the kernel to exit (measured here: 4 of 30 trivial notebooks,
        # none with immediate), which doubled the time of a batch of small notebooks.
        shutdown_kernel="immediate",
    )
    env = options.env
    if (env and env.get("MLFLOW_RUN_ID")) or options.late_env is not None:
        # resume nbops's run when the notebook imports mlflow (see nbops/_kernel.py)
        final["extra_arguments"] = ["--IPKernelApp.exec_lines=import nbops._kernel"]
    return final


def _execute(nb_man: Any, final: dict[str, Any], kernel_name: str, options: EngineOptions) -> Any:
    """The notebook run by papermill's client, under the watchdog; whatever the kernel started
    ended afterwards."""
    from nbops.run.papermill_private import engine_parts  # papermill's internals, fenced

    _, PapermillNotebookClient, _, _ = engine_parts()
    start_kwargs: dict[str, Any] = {  # what the kernel's process is started with
        k: v for k, v in (("env", options.env), ("stderr", options.kernel_stderr), ("cwd", options.cwd))
        if v is not None}
    done = threading.Event()
    client = None
    kernel = KernelProcs(final, kernel_name, start_kwargs)  # sockets; a mark on its processes
    try:
        client = PapermillNotebookClient(nb_man, **final)
        if options.late_env is not None:
            client.on_notebook_start = _late_env_hook(client, options.late_env, options.state)
        threading.Thread(
            target=watchdog, args=(client, options.deadline, done, options.state), daemon=True
        ).start()
        return client.execute(**start_kwargs)
    except BaseException:
        if options.late_env is not None:  # the hook failed before the first cell: no kernel left
            process = kernel_process(client)
            if process is not None:
                process.kill()
        raise
    finally:
        done.set()
        kernel.end()  # what the notebook started (setsid or not) killed, the sockets removed


def _late_env_hook(client, late_env, state: dict):
    """nbclient's on_notebook_start (the kernel is up, no cell has run): wait for the environment
    decided while the kernel started (the MLflow run nbops creates meanwhile) and set it in the
    kernel. `nbops._kernel` reads MLFLOW_RUN_ID only when the notebook imports mlflow."""
    import asyncio

    async def hook(**_: Any) -> None:
        state["paused_since"] = waited = time.monotonic()  # nbops's own wait: not the notebook's time
        try:
            extra = await asyncio.get_running_loop().run_in_executor(None, late_env)
        finally:
            state["paused_s"] = time.monotonic() - waited  # the watchdog moves its deadline
            del state["paused_since"]
        code = f"__import__('os').environ.update({dict(extra)!r})"
        reply = await client.async_wait_for_reply(client.kc.execute(code, silent=True, store_history=False))
        if (reply or {}).get("content", {}).get("status") != "ok":
            raise RuntimeError("could not set the MLflow run's environment in the kernel")

    return hook
