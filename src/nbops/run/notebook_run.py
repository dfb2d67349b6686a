"""One notebook in a fresh kernel, with its MLflow run around it: the run created while the
kernel starts (local executor) or before it (Ray), finished after it, kept in the spool when the
store does not take it, and never left RUNNING; untracked, the kernel logs into a scratch store."""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import store_errors
from nbops.run.executors import local_execute
from nbops.run.kernel_env import kernel_env
from nbops.run.spec import RunSpec
from nbops.run.stage_data import NotDelivered, Outcome, RunResult


def run_notebook(settings: Settings, spec: RunSpec, tracker, git, debug: bool,
                 parent_run_id: str | None = None, on_cell=None, executor=local_execute,
                 slot: AbstractContextManager | None = None) -> Outcome:
    """One notebook in a fresh kernel, tracked when `tracker` is given. SLOT is held while the
    kernel runs, not while its record is written (another kernel may start meanwhile)."""
    slot = slot or nullcontext()
    if tracker is None:
        with slot:
            return Outcome(_execute_untracked(settings, spec, debug, on_cell, executor))
    with slot:
        started, result = _execute_tracked(settings, spec, tracker, git, debug, parent_run_id, on_cell, executor)
    return _finish(tracker, started, result)


def _execute_untracked(settings: Settings, spec: RunSpec, debug: bool, on_cell, executor) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="nbops-untracked-") as scratch:
        # the kit's log_* helpers skip logging; direct mlflow calls go to a scratch store
        # NBOPS_TRACKING_URI keeps the project's store for nbops's own reads in the kernel
        # (the batch_predict template loads a registered model)
        env = {**kernel_env(settings, spec), "NBOPS_NO_TRACK": "1",
               "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlflow.db'}",
               "NBOPS_TRACKING_URI": settings.resolved_tracking_uri}
        return executor(spec, env, debug, on_cell)


def _execute_tracked(settings: Settings, spec: RunSpec, tracker, git, debug: bool,
                     parent_run_id: str | None, on_cell, executor) -> tuple[Any, RunResult]:
    """The run started and the notebook executed: (StartedRun, RunResult)."""
    if executor is local_execute:
        return _start_with_kernel(settings, spec, tracker, git, debug, parent_run_id, on_cell)
    started = tracker.start(spec, git, parent_run_id, direct=True)  # its kernel runs elsewhere
    try:
        env = {**kernel_env(settings, spec), **tracker.kernel_env(started)}
        return started, executor(spec, env, debug, on_cell)
    except BaseException:  # Ctrl-C or a bug: the run must not stay RUNNING
        tracker.abort(started)
        raise


def _start_with_kernel(settings: Settings, spec: RunSpec, tracker, git, debug: bool,
                       parent_run_id: str | None, on_cell) -> tuple[Any, RunResult]:
    """The MLflow run is created on a thread while the kernel starts (each takes about a second);
    the kernel gets the run's environment before its first cell (papermill_engine.py's late environment)."""
    box: Future = Future()

    def create() -> None:
        try:
            box.set_result(tracker.start(spec, git, parent_run_id))
        except BaseException as exc:  # noqa: BLE001 - handed to the kernel's hook and to us
            box.set_exception(exc)

    threading.Thread(target=create, name="nbops-start", daemon=True).start()
    try:
        result = local_execute(spec, kernel_env(settings, spec), debug, on_cell,
                               late_env=lambda: tracker.kernel_env(box.result()))
    except BaseException:  # Ctrl-C or a bug: the run must not stay RUNNING
        if box.exception() is None:  # waits for the run being created
            tracker.abort(box.result())
        raise
    if box.exception() is not None:  # no run: the kernel was stopped before its first cell
        for path in (result.output_path, result.kernel_log):
            if path is not None:
                path.unlink(missing_ok=True)
        raise box.exception()  # type: ignore[misc]
    return box.result(), result


def _finish(tracker, started: Any, result: RunResult) -> Outcome:
    """The run's record written (or kept in the spool): the Outcome the summary shows."""
    try:
        tracked = tracker.finish(started, result)
    except NotDelivered as kept:  # logged locally first: whole in the spool, the server did not take it
        return Outcome(result, None, unrecorded=kept.line)
    except store_errors() as exc:
        # the store went away (retried for the budget): the notebook ran, its files are kept
        # and the summary still prints; the run is ended by the orphan reaper once it is back
        return Outcome(result, None, unrecorded=tracker.keep_locally(started, result, exc))
    except Exception:
        tracker.abort(started, "FAILED")  # whatever failed (a bug too), the run must not stay RUNNING
        raise
    return Outcome(result, tracked)
