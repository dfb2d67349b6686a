"""Execute one :class:`RunSpec` with papermill and return a :class:`RunResult`.

papermill gives us parameter injection, progressive saving of the output notebook and error
marking; on top of it nbops adds (through a small papermill engine) an environment per kernel
(the MLflow run id), a whole-notebook deadline that kills a runaway kernel, and the kernel's
stderr kept in a log file next to the executed notebook.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.core.secrets import masked
from nbops.notebook.scraps import read_records
from nbops.run.kernel_procs import KernelProcs
from nbops.run.papermill_private import kernel_process
from nbops.run.saving import OutputWriteError, Saves, install_local_io
from nbops.run.spec import RunSpec

ENGINE_NAME = "nbops"
# Set on Ctrl-C while notebooks run in worker threads: every kernel is killed at once, so the
# workers finish (their runs end KILLED) instead of the interrupt waiting for whole notebooks.
CANCEL = threading.Event()
_SKIP_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


@dataclass(frozen=True)
class CellError:
    cell: int | None  # 1-based over the source notebook's cells (the injected cell not counted)
    ename: str
    evalue: str

    def __str__(self) -> str:
        where = f"cell {self.cell}: " if self.cell else ""
        return f"{where}{self.ename}: {self.evalue}" if self.evalue else f"{where}{self.ename}"


@dataclass(frozen=True)
class RunResult:
    spec: RunSpec
    status: str  # "succeeded", "failed" or "interrupted" (Ctrl-C)
    output_path: Path
    duration: float
    error: CellError | None = None
    records: dict[str, Any] = field(default_factory=dict)
    kernel_log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@functools.cache
def _engine_class():
    """papermill's nbclient engine, plus env, a deadline and a kernel log (built lazily)."""
    from nbops.run.papermill_private import engine_parts  # papermill's internals, fenced

    NBClientEngine, PapermillNotebookClient, merge_kwargs, remove_args = engine_parts()

    class NbopsEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
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
            env = kwargs.pop("nbops_env", None)
            late_env = kwargs.pop("nbops_late_env", None)
            secrets = kwargs.pop("nbops_secrets", ())
            if secrets:  # the saved notebook reads them from the kernel's environment
                _read_secrets_from_env(nb_man.nb, secrets)
            deadline = kwargs.pop("nbops_deadline", None)
            state = kwargs.pop("nbops_state", {})
            kernel_stderr = kwargs.pop("nbops_kernel_stderr", None)
            kernel_cwd = kwargs.pop("nbops_cwd", None)
            on_cell = kwargs.pop("nbops_on_cell", None)
            output_log = kwargs.pop("nbops_log", None)
            Saves(nb_man)  # progressive saves throttled: per-cell cost independent of the size
            if on_cell is not None:  # report each cell as papermill starts it
                cell_start, total = nb_man.cell_start, len(nb_man.nb.cells)

                def reporting_cell_start(cell, cell_index=None, **kw):
                    on_cell(cell_index + 1 if cell_index is not None else 0, total)
                    return cell_start(cell, cell_index, **kw)

                nb_man.cell_start = reporting_cell_start
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(
                kwargs,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=output_log or logging.getLogger("nbops.kernel"),
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                # Every output has arrived when the last cell replies, and each kernel is used
                # once: kill it rather than ask it to shut down. The graceful path sometimes
                # waits ~3.3 s for the kernel to exit (measured here: 4 of 30 trivial notebooks,
                # none with immediate), which doubled the time of a batch of small notebooks.
                shutdown_kernel="immediate",
            )
            if (env and env.get("MLFLOW_RUN_ID")) or late_env is not None:
                # resume nbops's run when the notebook imports mlflow (see nbops/_kernel.py)
                final["extra_arguments"] = ["--IPKernelApp.exec_lines=import nbops._kernel"]
            start_kwargs: dict[str, Any] = {  # what the kernel's process is started with
                k: v for k, v in (("env", env), ("stderr", kernel_stderr), ("cwd", kernel_cwd)) if v is not None}
            done = threading.Event()
            client = None
            kernel = KernelProcs(final, kernel_name, start_kwargs)  # sockets; a mark on its processes
            try:
                client = PapermillNotebookClient(nb_man, **final)
                if late_env is not None:
                    client.on_notebook_start = _late_env_hook(client, late_env, state)
                threading.Thread(
                    target=_watchdog, args=(client, deadline, done, state), daemon=True
                ).start()
                return client.execute(**start_kwargs)
            except BaseException:
                if late_env is not None:  # the hook failed before the first cell: no kernel left
                    process = kernel_process(client)
                    if process is not None:
                        process.kill()
                raise
            finally:
                done.set()
                kernel.end()  # what the notebook started (setsid or not) killed, the sockets removed

    return NbopsEngine


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


def _secret_env_name(name: str) -> str:
    return f"NBOPS_SECRET_{name}"


def _read_secrets_from_env(nb, names: tuple[str, ...]) -> None:
    """Papermill injected `NAME = "***"` for each secret parameter (it was handed masked values,
    so that no saved copy of the notebook ever holds the secret); make each of those lines read
    the real value from the kernel's environment instead, removing it from there."""
    for cell in nb.cells:
        if "injected-parameters" not in (cell.get("metadata", {}).get("tags") or []):
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            name = line.split("=", 1)[0].strip()
            if name in names:
                lines[i] = (f'{name} = __import__("json").loads(__import__("os").environ.pop('
                            f'"{_secret_env_name(name)}"))  # a secret: never stored')
        cell.source = "\n".join(lines)


def _watchdog(client, seconds: float | None, done: threading.Event, state: dict) -> None:
    """Kill the kernel when the notebook overruns or nbops is interrupted (CANCEL); nbclient
    then sees a dead kernel at once."""
    limit = time.monotonic() + seconds if seconds else None
    while not done.wait(0.2):
        if limit is not None and "paused_s" in state:
            limit += state.pop("paused_s")
        if CANCEL.is_set():
            state["interrupted"] = True
        elif (limit is not None and "paused_since" not in state and "paused_s" not in state
              and time.monotonic() >= limit):
            state["timed_out"] = True
        else:
            continue
        while not done.is_set():  # the kernel may still be starting: wait for its process
            process = kernel_process(client)
            if process is not None:
                try:
                    process.kill()
                except OSError:
                    pass
                return
            done.wait(0.1)
        return


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each write (a test or a caller may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _PrefixFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "notebook", "")
        lines = record.getMessage().rstrip("\n").split("\n")
        return "\n".join(f"{label} | {line}" if label else line for line in lines)


def _output_logger(spec: RunSpec) -> logging.LoggerAdapter:
    """Where papermill's log_output sends a cell's stdout (info) and stderr (warning): nbops's
    stderr, each line prefixed with the notebook's label when several notebooks run at once."""
    logger = logging.getLogger("nbops.output")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_PrefixFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
    return logging.LoggerAdapter(logger, {"notebook": spec.label})


def prepare(spec: RunSpec) -> Path:
    """papermill's prepare_only: the parameterised notebook written to the output path, not run."""
    import papermill as pm

    install_local_io()
    _quiet_loggers(False)
    out = spec.output_path
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(spec.notebook.path.resolve()), str(out.resolve()),
                        parameters=masked(spec.overrides, spec.secrets) or None,
                        kernel_name=spec.kernel_name, language=spec.language or None,
                        prepare_only=True, progress_bar=False)
    return out


def _quiet_loggers(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.CRITICAL
    for name in ("papermill", "nbops.kernel", "traitlets", "nbclient"):
        logging.getLogger(name).setLevel(level)


def _kept(cells: list) -> list[tuple[int, dict]]:
    """(1-based position, cell) of the cells that are not papermill's injected-parameters or
    error-marker cells (papermill removes a notebook's old markers and adds its own)."""
    return [(i, c) for i, c in enumerate(cells, 1)
            if isinstance(c, dict) and not _SKIP_TAGS & set(c.get("metadata", {}).get("tags") or [])]


def locate_failure(nb: dict, source: dict | None = None) -> CellError | None:
    """Where an executed notebook stopped: the cell papermill flagged as raising, else the first
    error output, else the last cell papermill started (a dead kernel or a timeout leaves no
    error output). Cell numbers count the cells of SOURCE (the notebook as the user sees it, old
    error markers of an earlier papermill run included); the executed notebook's own injected
    and error-marker cells are not counted."""
    cells = [c for _, c in _kept(nb.get("cells", []))]
    positions = [i for i, _ in _kept(source.get("cells", []))] if source else []

    def number(k: int) -> int:  # the k-th kept executed cell is the k-th kept source cell
        return positions[k - 1] if len(positions) == len(cells) else k

    last_started = None
    for k, cell in enumerate(cells, 1):  # papermill flags the cell that raised
        if (cell.get("metadata", {}).get("papermill") or {}).get("exception"):
            errors = [o for o in cell.get("outputs") or [] if o.get("output_type") == "error"]
            err = errors[-1] if errors else {}
            return CellError(number(k), err.get("ename", "Error"), err.get("evalue", ""))
    for k, cell in enumerate(cells, 1):
        for out in cell.get("outputs") or []:
            if out.get("output_type") == "error":
                if out.get("ename") == "SystemExit" and out.get("evalue") in ("", "0"):
                    continue
                return CellError(number(k), out.get("ename", "Error"), out.get("evalue", ""))
        if (cell.get("metadata", {}).get("papermill") or {}).get("start_time"):
            last_started = number(k)
    return CellError(last_started, "", "") if last_started else None


def _read_output(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _with_secrets(env: dict[str, str] | None, spec: RunSpec) -> dict[str, str] | None:
    given = {n: spec.overrides[n] for n in spec.secrets if n in spec.overrides}
    if not given:
        return env
    base = dict(os.environ) if env is None else dict(env)
    return {**base, **{_secret_env_name(n): json.dumps(v) for n, v in given.items()}}


def execute(spec: RunSpec, env: dict[str, str] | None = None, debug: bool = False,
            on_cell=None, late_env=None) -> RunResult:
    """Run one notebook in a fresh kernel. Never raises for a failing notebook: the result says.
    LATE_ENV: a callable giving more environment once the kernel is up, before the first cell."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    papermill_engines.register(ENGINE_NAME, _engine_class())
    install_local_io()  # no process-wide chdir around papermill's reads and writes; atomic writes
    _quiet_loggers(debug)
    out = spec.output_path
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel_log = out.with_suffix(".kernel.log")
    state: dict[str, Any] = {}
    start = time.perf_counter()
    failure: CellError | None = None
    with open(kernel_log, "wb") as stderr:
        try:
            # Absolute paths and the kernel's cwd given to the kernel itself: papermill's own `cwd`
            # option chdirs the whole process, which races when notebooks run in parallel threads.
            pm.execute_notebook(
                str(spec.notebook.path.resolve()),
                str(out.resolve()),
                parameters=masked(spec.overrides, spec.secrets) or None,
                engine_name=ENGINE_NAME,
                kernel_name=spec.kernel_name,
                language=spec.language or None,
                execution_timeout=spec.cell_timeout,
                start_timeout=spec.start_timeout,
                progress_bar=False,
                log_output=spec.log_output,
                nbops_log=_output_logger(spec) if spec.log_output else None,
                nbops_cwd=str(spec.notebook.path.parent.resolve()),
                nbops_on_cell=on_cell,
                nbops_env=_with_secrets(env, spec),
                nbops_late_env=late_env,
                nbops_secrets=tuple(n for n in spec.secrets if n in spec.overrides),
                nbops_deadline=spec.timeout,
                nbops_state=state,
                nbops_kernel_stderr=stderr,
            )
        except OutputWriteError as exc:  # a full disk: no truncated notebook is left or logged
            out.unlink(missing_ok=True)
            failure = CellError(None, "OutputWriteError",
                                f"cannot write the executed notebook: {exc.strerror}")
        except PapermillExecutionError as exc:
            failure = CellError(None, exc.ename, exc.evalue)
        except CellTimeoutError:
            failure = CellError(None, "CellTimeout", f"a cell ran longer than {spec.cell_timeout:g} s")
        except DeadKernelError:
            if state.get("interrupted"):
                failure = CellError(None, "Interrupted", "stopped by Ctrl-C")
            elif state.get("timed_out"):
                failure = CellError(None, "NotebookTimeout", f"the notebook ran longer than {spec.timeout:g} s")
            else:
                failure = CellError(None, "DeadKernel", "the kernel died (see the kernel log)")
        except (AttributeError, NameError, TypeError, AssertionError):
            raise  # a bug (nbops's or papermill's): exit 3 with its traceback, shown with --debug
        except Exception as exc:  # noqa: BLE001 - the kernel never started, papermill refused the notebook: a failed run
            failure = CellError(None, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    duration = time.perf_counter() - start
    nb = _read_output(out)
    if failure is not None:
        where = locate_failure(nb, _read_output(spec.notebook.path))
        failure = CellError(where.cell if where else None, failure.ename, failure.evalue)
    if failure is None or kernel_log.stat().st_size == 0:
        kernel_log.unlink()  # only a failed run's kernel output is worth keeping
        if failure is not None and failure.ename == "DeadKernel":  # no log to point at
            failure = CellError(failure.cell, failure.ename,
                                "the kernel died and wrote nothing to stderr (killed? out of memory?)")
    return RunResult(
        spec=spec,
        status=("interrupted" if state.get("interrupted") else "failed") if failure else "succeeded",
        output_path=out,
        duration=duration,
        error=failure,
        records=read_records(nb),
        kernel_log=kernel_log if kernel_log.exists() else None,
    )
