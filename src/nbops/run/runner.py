"""`nbops run`: notebooks -> RunSpecs -> papermill -> MLflow, `jobs` notebooks at a time.

The run stage's entry: `plan_runs` checks everything that can be wrong with the input for every
notebook before the first kernel starts or the first MLflow run is created (input_checks.py);
`run_specs` opens the tracker while the first kernels start and runs the batch (batch.py), each
notebook with its MLflow run around it (notebook_run.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import git_info
from nbops.run.batch import Batch
from nbops.run.executors import local_execute
from nbops.run.input_checks import check_kernels, plan_runs
from nbops.run.progress import Progress
from nbops.run.spec import RunSpec
from nbops.run.stage_data import Outcome, Registrar
from nbops.run.watchdog import CANCEL

# what the other layers import from here
__all__ = ["Outcome", "check_kernels", "plan_runs", "run_specs"]


class _OpeningTracker:
    """The Tracker opened on a thread while the first kernels start (`import mlflow` and opening
    the store take seconds); the checks that must fail before any kernel starts (a read-only
    store, a server that does not answer) run here first. Every use waits for it."""

    def __init__(self, settings: Settings, experiment: str | None, registrar: Registrar | None):
        from nbops.core.store import check_reachable, check_writable
        from nbops.run.tracking import Tracker

        check_writable(settings.resolved_tracking_uri)
        check_reachable(settings.resolved_tracking_uri)
        self._opened: Future = Future()

        def open_() -> None:
            try:
                self._opened.set_result(Tracker(settings, experiment=experiment, registrar=registrar))
            except BaseException as exc:  # noqa: BLE001 - raised where the tracker is used
                self._opened.set_exception(exc)

        threading.Thread(target=open_, name="nbops-tracker", daemon=True).start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opened.result(), name)


def run_specs(
    settings: Settings,
    specs: list[RunSpec],
    track: bool = True,
    debug: bool = False,
    on_done: Callable[[Outcome], None] | None = None,
    experiment: str | None = None,
    registrar: Registrar | None = None,
    jobs: int = 1,
    tracker=None,
    parent_run_id: str | None = None,
    progress: Progress | None = None,
    executor=local_execute,
    needs: list[tuple[int, ...]] | None = None,
) -> list[Outcome]:
    """Run every spec, `jobs` at a time, each in its own fresh kernel; outcomes keep spec order.

    Notebooks that ask for a GPU also wait for one of the GPUs present (when there are any).
    NEEDS (a pipeline, specs in an order where each comes after those it needs): the indices of
    the specs each spec needs; it starts once they succeeded, and is skipped when one did not.
    """
    CANCEL.clear()  # a Ctrl-C of an earlier batch in this process is over
    git = None
    if track:
        if tracker is None:  # imports mlflow (only when tracking), while the kernels start
            tracker = _OpeningTracker(settings, experiment, registrar)
        git = git_info(settings.root)
    else:
        tracker = None
    batch = Batch(settings, specs, tracker=tracker, git=git, debug=debug, jobs=jobs,
                  parent_run_id=parent_run_id, progress=progress or Progress(), executor=executor,
                  needs=needs, on_done=on_done)
    return batch.run()
