"""A batch of notebooks scheduled: `jobs` kernels at a time (and, for the notebooks that ask
for a GPU, one per GPU present), a pipeline's notebook started once those it needs succeeded and
skipped when one did not, progress reported, Ctrl-C ending every kernel at once (CANCEL).
Outcomes keep the specs' order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import gpu_count, relative_to_repo
from nbops.run.executors import local_execute
from nbops.run.notebook_run import run_notebook
from nbops.run.progress import Progress
from nbops.run.spec import RunSpec
from nbops.run.stage_data import CellError, Outcome, RunResult
from nbops.run.watchdog import CANCEL


def skipped(spec: RunSpec, failed: list[str]) -> Outcome:
    """A pipeline's notebook not run because a notebook it needs failed (or was skipped)."""
    which = ", ".join(failed)
    return Outcome(RunResult(spec=spec, status="skipped", output_path=spec.output_path, duration=0.0,
                             error=CellError(None, "Skipped", f"needs {which}, which did not succeed")))


def _labelled(settings: Settings, specs: list[RunSpec]) -> tuple[list[RunSpec], list[str]]:
    """Each notebook's label in the progress lines and streamed output, and the specs with it."""
    labels = [relative_to_repo(s.notebook.path, settings.root) for s in specs]
    if len(set(labels)) < len(labels):  # the same notebook several times (a sweep): number them
        labels = [f"{label} [{i + 1}]" for i, label in enumerate(labels)]
    if len(specs) > 1:  # streamed cell output (--log-output) says which notebook printed it
        specs = [replace(s, label=label) if s.log_output else s for s, label in zip(specs, labels, strict=True)]
    return specs, labels


class Batch:
    """The notebooks of one run_specs call (runner.py), each in its own fresh kernel. NEEDS (a
    pipeline, specs in an order where each comes after those it needs): the indices of the specs
    each spec needs."""

    def __init__(self, settings: Settings, specs: list[RunSpec], *, tracker: Any, git: Any, debug: bool,
                 jobs: int, parent_run_id: str | None, progress: Progress, executor: Any,
                 needs: list[tuple[int, ...]] | None, on_done: Callable[[Outcome], None] | None):
        self.settings, self.tracker, self.git, self.debug = settings, tracker, git, debug
        self.jobs, self.parent_run_id, self.progress, self.executor = jobs, parent_run_id, progress, executor
        self.needs, self.on_done = needs, on_done
        self.gpu_slots = threading.BoundedSemaphore(gpu_count() or 1)
        self.specs, self.labels = _labelled(settings, specs)
        # `jobs` kernels at a time; a tracked batch has twice as many workers, so that one writes a
        # finished run's record (artifacts, the HTML page, registration) while the next kernel runs
        self.kernels = threading.BoundedSemaphore(max(jobs, 1))
        self.done: list[Future] = [Future() for _ in specs]  # each spec's outcome, for those that need it

    def run(self) -> list[Outcome]:
        """Every notebook's Outcome, in the specs' order."""
        count = len(self.specs)
        if self.jobs <= 1 or count <= 1:
            return [self._one(i) for i in range(count)]
        workers = self.jobs * 2 if self.tracker is not None else self.jobs
        if self.needs:  # a thread per notebook: one waiting for its needs holds no kernel slot
            workers = max(workers, count)
        pool = ThreadPoolExecutor(max_workers=min(workers, count), thread_name_prefix="nbops-run")
        try:
            # in order: the first unfinished notebook never waits, so the waits always end
            futures = [pool.submit(self._one, i) for i in range(count)]
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            # Ctrl-C reaches this thread only: kill the running kernels so the workers end their
            # runs (KILLED) within a second, and start nothing new
            CANCEL.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, index: int) -> Outcome:
        try:
            outcome = self._after_needs(index)
        except BaseException as exc:  # the notebooks that wait for it must not wait forever
            self.done[index].set_exception(exc)
            raise
        self.done[index].set_result(outcome)
        return outcome

    def _after_needs(self, index: int) -> Outcome:
        """The notebook run once those it needs are done; skipped when one of them did not succeed,
        else given their runs (kit.upstream)."""
        spec, label = self.specs[index], self.labels[index]
        if self.needs and self.needs[index]:
            upstream = [(self.specs[i].notebook.stem, self.done[i].result()) for i in self.needs[index]]
            failed = [name for name, o in upstream if not o.ok]
            if failed:
                outcome = skipped(spec, failed)
                self.progress.skipped(label, outcome.result.error.evalue if outcome.result.error else "")
                return outcome
            spec = replace(spec, upstream=(*spec.upstream, *(
                (name, o.tracked.run_id) for name, o in upstream if o.tracked is not None)))
        return self._run(spec, label)

    def _run(self, spec: RunSpec, label: str) -> Outcome:
        def on_cell(index: int, total: int) -> None:
            self.progress.cell(label, index, total)

        slot = self._kernel_slot(label)
        args = (self.settings, spec, self.tracker, self.git, self.debug, self.parent_run_id, on_cell,
                self.executor, slot)
        if spec.notebook.resources.gpu and gpu_count() and self.executor is local_execute:
            with self.gpu_slots:
                outcome = run_notebook(*args)
        else:
            outcome = run_notebook(*args)
        self.progress.finished(label, outcome.ok, outcome.result.duration,
                               "" if outcome.ok else (outcome.unrecorded or str(outcome.result.error)))
        if self.on_done:
            self.on_done(outcome)
        return outcome

    @contextmanager
    def _kernel_slot(self, label: str) -> Iterator[None]:
        with self.kernels:
            if CANCEL.is_set():  # Ctrl-C while this notebook waited: start nothing new
                raise KeyboardInterrupt
            self.progress.started(label)
            yield
