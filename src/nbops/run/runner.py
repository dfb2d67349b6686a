"""`nbops run`: notebooks -> RunSpecs -> papermill -> MLflow, one notebook after another.

Everything that can be wrong with the input is checked for every notebook before the first
kernel starts or the first MLflow run is created.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import git_info, gpu_count, relative_to_repo
from nbops.core.errors import ExecutionError, NotebookError, store_errors
from nbops.core.files import writable_dir
from nbops.notebook import document as notebook_mod
from nbops.notebook.model_name import validate_model_name
from nbops.run.engine import CANCEL, CellError, RunResult
from nbops.run.executors import local_execute
from nbops.run.progress import Progress
from nbops.run.spec import RunSpec, make_spec
from nbops.run.tracking import NotDelivered, Registrar, TrackedRun


@dataclass(frozen=True)
class Outcome:
    result: RunResult
    tracked: TrackedRun | None = None
    unrecorded: str = ""  # the store could not take the record: what was kept locally, and why

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.unrecorded


def plan_runs(
    settings: Settings,
    paths: list[str | Path],
    overrides: dict[str, Any],
    timeout: float | None = None,
    cell_timeout: float | None = None,
    log_output: bool = False,
) -> list[RunSpec]:
    if not paths:
        raise NotebookError("no notebooks given", hint="e.g. nbops run notebooks/*.ipynb")
    writable_dir(settings.path(settings.runs_dir), "--output-dir")  # before any run is created
    notebooks = [notebook_mod.load(p) for p in paths]
    specs = [make_spec(settings, nb, overrides, timeout, cell_timeout, log_output) for nb in notebooks]
    check_kernels(specs, chosen_by=_kernel_source(settings))
    for spec in specs:  # a name MLflow will refuse is found now, not after the run
        model = spec.notebook.model
        problem = validate_model_name(model.name) if model else None
        if model and problem:
            raise NotebookError(f"{spec.notebook.path}: metadata.nbops.model.name {model.name!r} {problem}",
                                hint="MLflow registers names of letters, digits, '-', '_' and '.'")
    return specs


def _kernel_source(settings: Settings) -> str:
    """Who chose the kernel instead of the notebooks' kernelspec ("" when nobody did)."""
    if not settings.kernel_name:
        return ""
    source = settings.sources.get("kernel_name", "")
    return {"flag": "--kernel", "pyproject.toml": "[tool.nbops] kernel_name"}.get(source, source)


def check_kernels(specs: list[RunSpec], chosen_by: str = "") -> None:
    """Every kernel installed, before anything runs. CHOSEN_BY: --kernel (or the setting) that
    replaced the notebooks' own kernelspec, named in the error instead of the notebook."""
    from jupyter_client.kernelspec import KernelSpecManager

    known = KernelSpecManager().find_kernel_specs()
    known.setdefault("python3", "")  # jupyter_client always provides the running Python
    for spec in specs:
        if spec.kernel_name not in known:
            installed = ", ".join(sorted(known))
            if chosen_by:
                raise ExecutionError(f"{chosen_by}: no Jupyter kernel named '{spec.kernel_name}'",
                                     path=str(spec.notebook.path), ename="NoSuchKernel",
                                     evalue=spec.kernel_name, hint=f"installed kernels: {installed}")
            raise ExecutionError(
                f"{spec.notebook.path}: no Jupyter kernel named '{spec.kernel_name}'",
                path=str(spec.notebook.path), ename="NoSuchKernel", evalue=spec.kernel_name,
                hint=f"installed kernels: {installed}; set metadata.kernelspec.name or pass --kernel NAME",
            )


def kernel_base_env(settings: Settings) -> dict[str, str]:
    """What nbops adds to every kernel's environment: the store's and artifact stores'
    credentials (core/store.forwarded_env: a Ray worker elsewhere has none of this process's
    environment), and the project's src/ importable, so a notebook can `import mypkg.features`
    without installing the project."""
    from nbops.core.store import forwarded_env

    env = forwarded_env(settings.kernel_env_names)
    env.update(_quiet_progress_env())
    src = settings.path(settings.src_dir)
    if src.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    return env


def kernel_env(settings: Settings, spec: RunSpec) -> dict[str, str]:
    """kernel_base_env, plus where a pipeline's notebook finds its upstreams' runs (kit.upstream)."""
    env = kernel_base_env(settings)
    if spec.upstream:
        import json

        env["NBOPS_UPSTREAM"] = json.dumps(dict(spec.upstream))
        env["NBOPS_UPSTREAM_URI"] = settings.resolved_tracking_uri
    return env


# tqdm's one warning that a kernel without ipywidgets cannot draw a notebook progress bar
TQDM_NO_WIDGETS = "ignore:IProgress not found:Warning"


def _quiet_progress_env() -> dict[str, str]:
    """No progress-bar noise in a run's report. `import mlflow` imports `tqdm.auto` (mlflow.genai),
    which in a kernel without ipywidgets warns "TqdmWarning: IProgress not found", with the venv's
    path, into the first cell that imports mlflow (`log_model`): that one warning is ignored in the
    kernel (PYTHONWARNINGS, the user's own filters kept), every other warning still shows. And
    MLflow's artifact bars (a model's download in `batch_predict`) stay out of the saved notebook
    unless MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR is set."""
    given = os.environ.get("PYTHONWARNINGS", "")
    return {"PYTHONWARNINGS": ",".join(w for w in (given, TQDM_NO_WIDGETS) if w),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")}


def _run_one(settings: Settings, spec: RunSpec, tracker, git, debug: bool,
             parent_run_id: str | None = None, on_cell=None, executor=local_execute,
             slot: AbstractContextManager | None = None) -> Outcome:
    """One notebook in a fresh kernel, tracked when `tracker` is given. SLOT is held while the
    kernel runs, not while its record is written (another kernel may start meanwhile)."""
    slot = slot or nullcontext()
    if tracker is None:
        with slot, tempfile.TemporaryDirectory(prefix="nbops-untracked-") as scratch:
            # the kit's log_* helpers skip logging; direct mlflow calls go to a scratch store
            # NBOPS_TRACKING_URI keeps the project's store for nbops's own reads in the kernel
            # (the batch_predict template loads a registered model)
            env = {**kernel_env(settings, spec), "NBOPS_NO_TRACK": "1",
                   "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlflow.db'}",
                   "NBOPS_TRACKING_URI": settings.resolved_tracking_uri}
            return Outcome(executor(spec, env, debug, on_cell))
    with slot:
        if executor is local_execute:
            started, result = _start_with_kernel(settings, spec, tracker, git, debug, parent_run_id, on_cell)
        else:
            started = tracker.start(spec, git, parent_run_id, direct=True)  # its kernel runs elsewhere
            try:
                env = {**kernel_env(settings, spec), **tracker.kernel_env(started)}
                result = executor(spec, env, debug, on_cell)
            except BaseException:  # Ctrl-C or a bug: the run must not stay RUNNING
                tracker.abort(started)
                raise
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


def _start_with_kernel(settings: Settings, spec: RunSpec, tracker, git, debug: bool,
                       parent_run_id: str | None, on_cell) -> tuple[Any, RunResult]:
    """The MLflow run is created on a thread while the kernel starts (each takes about a second);
    the kernel gets the run's environment before its first cell (engine.py's late environment)."""
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


def skipped(spec: RunSpec, failed: list[str]) -> Outcome:
    """A pipeline's notebook not run because a notebook it needs failed (or was skipped)."""
    which = ", ".join(failed)
    return Outcome(RunResult(spec=spec, status="skipped", output_path=spec.output_path, duration=0.0,
                             error=CellError(None, "Skipped", f"needs {which}, which did not succeed")))


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
    gpu_slots = threading.BoundedSemaphore(gpu_count() or 1)
    progress = progress or Progress()
    labels = [relative_to_repo(s.notebook.path, settings.root) for s in specs]
    if len(set(labels)) < len(labels):  # the same notebook several times (a sweep): number them
        labels = [f"{label} [{i + 1}]" for i, label in enumerate(labels)]
    if len(specs) > 1:  # streamed cell output (--log-output) says which notebook printed it
        specs = [replace(s, label=label) if s.log_output else s for s, label in zip(specs, labels, strict=True)]

    # `jobs` kernels at a time; a tracked batch has twice as many workers, so that one writes a
    # finished run's record (artifacts, the HTML page, registration) while the next kernel runs
    kernels = threading.BoundedSemaphore(max(jobs, 1))

    @contextmanager
    def kernel_slot(label: str) -> Iterator[None]:
        with kernels:
            if CANCEL.is_set():  # Ctrl-C while this notebook waited: start nothing new
                raise KeyboardInterrupt
            progress.started(label)
            yield

    done: list[Future] = [Future() for _ in specs]  # each spec's outcome, for those that need it

    def one(index: int, spec: RunSpec, label: str) -> Outcome:
        try:
            outcome = one_after_needs(index, spec, label)
        except BaseException as exc:  # the notebooks that wait for it must not wait forever
            done[index].set_exception(exc)
            raise
        done[index].set_result(outcome)
        return outcome

    def one_after_needs(index: int, spec: RunSpec, label: str) -> Outcome:
        if needs and needs[index]:
            upstream = [(specs[i].notebook.stem, done[i].result()) for i in needs[index]]
            failed = [name for name, o in upstream if not o.ok]
            if failed:
                outcome = skipped(spec, failed)
                progress.skipped(label, outcome.result.error.evalue if outcome.result.error else "")
                return outcome
            spec = replace(spec, upstream=(*spec.upstream, *(
                (name, o.tracked.run_id) for name, o in upstream if o.tracked is not None)))
        return run_one(spec, label)

    def run_one(spec: RunSpec, label: str) -> Outcome:
        def on_cell(index: int, total: int) -> None:
            progress.cell(label, index, total)

        slot = kernel_slot(label)
        if spec.notebook.resources.gpu and gpu_count() and executor is local_execute:
            with gpu_slots:
                outcome = _run_one(settings, spec, tracker, git, debug, parent_run_id, on_cell, executor, slot)
        else:
            outcome = _run_one(settings, spec, tracker, git, debug, parent_run_id, on_cell, executor, slot)
        progress.finished(label, outcome.ok, outcome.result.duration,
                          "" if outcome.ok else (outcome.unrecorded or str(outcome.result.error)))
        if on_done:
            on_done(outcome)
        return outcome

    if jobs <= 1 or len(specs) <= 1:
        return [one(i, spec, label) for i, (spec, label) in enumerate(zip(specs, labels, strict=True))]
    workers = jobs * 2 if tracker is not None else jobs
    if needs:  # a thread per notebook: one waiting for its needs holds no kernel slot
        workers = max(workers, len(specs))
    pool = ThreadPoolExecutor(max_workers=min(workers, len(specs)), thread_name_prefix="nbops-run")
    try:
        # in order: the first unfinished notebook never waits, so the waits always end
        futures = [pool.submit(one, i, spec, label) for i, (spec, label) in enumerate(zip(specs, labels, strict=True))]
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        # Ctrl-C reaches this thread only: kill the running kernels so the workers end their
        # runs (KILLED) within a second, and start nothing new
        CANCEL.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
