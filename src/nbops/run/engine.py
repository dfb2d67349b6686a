"""Execute one :class:`RunSpec` with papermill and return a :class:`RunResult`.

papermill gives us parameter injection, progressive saving of the output notebook and error
marking; on top of it nbops adds (through its papermill engine, papermill_engine.py) an
environment per kernel (the MLflow run id), a whole-notebook deadline that kills a runaway kernel
(watchdog.py), and the kernel's stderr kept in a log file next to the executed notebook. What
failed and where is failure.py's; secret parameters reach the kernel as secret_params.py says.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from nbops.core.secrets import masked
from nbops.notebook.scraps import read_records
from nbops.run.failure import failure_of, locate_failure
from nbops.run.kernel_output import output_logger, quiet_loggers
from nbops.run.saving import OutputWriteError, install_local_io
from nbops.run.secret_params import secrets_given, with_secrets
from nbops.run.spec import RunSpec
from nbops.run.stage_data import CellError, RunResult

__all__ = ["CellError", "RunResult", "execute", "prepare"]  # what the other stages import from here

ENGINE_NAME = "nbops"


def prepare(spec: RunSpec) -> Path:
    """papermill's prepare_only: the parameterised notebook written to the output path, not run."""
    import papermill as pm

    install_local_io()
    quiet_loggers(False)
    out = spec.output_path
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(spec.notebook.path.resolve()), str(out.resolve()),
                        parameters=masked(spec.overrides, spec.secrets) or None,
                        kernel_name=spec.kernel_name, language=spec.language or None,
                        prepare_only=True, progress_bar=False)
    return out


def execute(spec: RunSpec, env: dict[str, str] | None = None, debug: bool = False,
            on_cell=None, late_env=None) -> RunResult:
    """Run one notebook in a fresh kernel. Never raises for a failing notebook: the result says.
    LATE_ENV: a callable giving more environment once the kernel is up, before the first cell."""
    from papermill.engines import papermill_engines

    from nbops.run.papermill_engine import engine_class

    papermill_engines.register(ENGINE_NAME, engine_class())
    install_local_io()  # no process-wide chdir around papermill's reads and writes; atomic writes
    quiet_loggers(debug)
    out = spec.output_path
    out.parent.mkdir(parents=True, exist_ok=True)
    kernel_log = out.with_suffix(".kernel.log")
    state: dict[str, Any] = {}
    start = time.perf_counter()
    failure: CellError | None = None
    with open(kernel_log, "wb") as stderr:
        try:
            _execute_notebook(spec, env, on_cell, late_env, state, stderr)
        except Exception as exc:  # noqa: BLE001 - papermill's failures become the run's; a bug is raised
            failure = failure_of(exc, spec, state)
            if failure is None:
                raise  # a bug (nbops's or papermill's): exit 3 with its traceback, shown with --debug
            if isinstance(exc, OutputWriteError):  # a full disk: no truncated notebook is left or logged
                out.unlink(missing_ok=True)
    return _result(spec, failure, state, time.perf_counter() - start, kernel_log)


def _execute_notebook(spec: RunSpec, env: dict[str, str] | None, on_cell, late_env, state: dict[str, Any],
                      stderr: IO[bytes]) -> None:
    """papermill's execute_notebook with nbops's engine and its keyword arguments."""
    import papermill as pm

    # Absolute paths and the kernel's cwd given to the kernel itself: papermill's own `cwd`
    # option chdirs the whole process, which races when notebooks run in parallel threads.
    pm.execute_notebook(
        str(spec.notebook.path.resolve()),
        str(spec.output_path.resolve()),
        parameters=masked(spec.overrides, spec.secrets) or None,
        engine_name=ENGINE_NAME,
        kernel_name=spec.kernel_name,
        language=spec.language or None,
        execution_timeout=spec.cell_timeout,
        start_timeout=spec.start_timeout,
        progress_bar=False,
        log_output=spec.log_output,
        nbops_log=output_logger(spec) if spec.log_output else None,
        nbops_cwd=str(spec.notebook.path.parent.resolve()),
        nbops_on_cell=on_cell,
        nbops_env=with_secrets(env, spec),
        nbops_late_env=late_env,
        nbops_secrets=secrets_given(spec),
        nbops_deadline=spec.timeout,
        nbops_state=state,
        nbops_kernel_stderr=stderr,
    )


def _result(spec: RunSpec, failure: CellError | None, state: dict[str, Any], duration: float,
            kernel_log: Path) -> RunResult:
    """The run's result from the executed notebook: the failing cell located, the records read,
    the kernel log kept only when a failed run's kernel wrote to it."""
    out = spec.output_path
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


def _read_output(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
