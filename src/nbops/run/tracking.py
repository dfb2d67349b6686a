"""Track runs in MLflow: a run created before the kernel starts, finished after it is gone.

The run id reaches the kernel through MLFLOW_RUN_ID, so `mlflow.<flavor>.log_model(...)` and
autologging inside the notebook land in it. When the kernel exits, MLflow's exit hook marks the
run FINISHED; nbops sets the real final status afterwards. A model is registered only when the
run succeeded, a model was logged and every gate holds.

Where the run is created: in the embedded store directly (it is local: nothing to lose); with a
tracking server or a team's database, in a local store of the run's own first (run/localrun.py),
turned into a spool entry when the kernel is done and delivered at once (run/spool_delivery.py,
run/upload.py); a server or artifact store that fails at any moment leaves the entry for
`nbops sync` (exit 4). The Ray executor's kernels run elsewhere and log to the server directly
(its record written by run/finish_direct.py). What a run is created with: run/run_metadata.py.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import GitInfo, relative_to_repo
from nbops.core.errors import TrackingError, first_line, store_errors
from nbops.core.registry_read import Unavailable
from nbops.core.run_store import ClientStore, LazyClient, open_store
from nbops.core.store import check_writable, kernel_retry_env, mask_uri, retry_env
from nbops.run import finish_direct, localrun, orphans, spool
from nbops.run.run_metadata import NewRun, new_run, sweep_params, sweep_tags
from nbops.run.spec import RunSpec
from nbops.run.spool_delivery import SpoolDelivery
from nbops.run.stage_data import NotDelivered, Registrar, RunResult, StartedRun, TrackedRun

# the plain values other modules import from here (defined in run/stage_data.py)
__all__ = ["NotDelivered", "Registrar", "StartedRun", "TrackedRun", "Tracker"]


class Tracker:
    """One MLflow client for a whole `nbops run`; every method takes and returns plain values."""

    def __init__(self, settings: Settings, experiment: str | None = None,
                 registrar: Registrar | None = None):
        self.settings = settings
        self.uri = settings.resolved_tracking_uri
        self.experiment = experiment or settings.experiment
        # registers a successful run's model (the lifecycle layer's); None: never register
        self.registrar = registrar
        check_writable(self.uri)  # a read-only mlflow.db: one line, before any kernel starts
        self.reaped: list[orphans.Orphan] = []
        # MLflow's client, opened on first use: one line within seconds for a server that is
        # down; MLflow's retries bounded; the runs of nbops processes that died without a word
        # are ended (see run/orphans.py). The embedded store's writer needs no client for a run's
        # own records (core/sqlite_writer.py: no `import mlflow`), so it ends the orphans itself.
        localrun.sweep_dead(settings.root)  # the local runs of an nbops that was killed -9
        self.client: Any = LazyClient(self._open_client)
        self.local_first = localrun.logs_locally_first(self.uri)
        if not self.local_first:
            _create_embedded(self.uri)
        # a server is not needed until the first upload (or a sweep's parent run)
        self.store: Any = (LazyClient(lambda: ClientStore(self.client._get())) if self.local_first
                           else open_store(self.uri, self.client))
        if not self.local_first and not self.client._is_open():
            try:
                self.reaped = orphans.reap(self.store)
            except (Unavailable, sqlite3.Error):  # MLflow's client ends them, or says why it cannot
                self.client._get()
        self.retry_env = retry_env()
        self.retry_s = settings.tracking_retry_s
        self.heartbeat = orphans.Heartbeat(self.store)
        self.delivery = SpoolDelivery(settings.root, self.uri, self.client, self._experiment_id, registrar,
                                      self.retry_s, settings.html_hide_input)

    def reap(self) -> list[orphans.Orphan]:
        """The orphaned runs this tracker ended (a server's store is opened now to end them)."""
        if self.local_first:
            self.client._get()
        return self.reaped

    def _open_client(self) -> Any:
        client, reaped = orphans.open_client(self.uri)
        self.reaped += reaped
        return client

    # -- before the kernel -------------------------------------------------------------------
    def _experiment_id(self, name: str) -> str:
        location = None
        if self.uri.startswith("sqlite:///"):  # artifacts beside the database file
            db_dir = Path(self.uri[len("sqlite:///"):]).parent
            artifacts = Path(self.settings.artifact_root)
            location = (artifacts if artifacts.is_absolute() else db_dir / artifacts).resolve().as_uri()
        return self.store.experiment_id(name, location)

    def start(self, spec: RunSpec, git: GitInfo, parent_run_id: str | None = None,
              direct: bool = False) -> StartedRun:
        """The run, created before the kernel starts: locally first with a tracking server, unless
        DIRECT (the Ray executor: its kernels run on other machines)."""
        new = new_run(spec, git, self.settings.root, self.experiment, parent_run_id,
                      review=self.registrar is None)
        if self.local_first and not direct:
            return self._start_local(new)
        return self._start_on_store(new, relative_to_repo(spec.notebook.path, self.settings.root))

    def _start_local(self, new: NewRun) -> StartedRun:
        """The run in a local store of its own (run/localrun.py), uploaded when it is finished."""
        local, store = localrun.open_local(self.settings.root, new.experiment, new.tags, new.run_name,
                                           new.start_time)
        try:
            store.log_params(local.run_id, new.params)
            if new.datasets:
                store.log_datasets(local.run_id, new.datasets, "training")
        except BaseException:
            localrun.discard(local)
            raise
        return StartedRun("", local.experiment_id, new.tags, new.experiment, new.run_name, new.start_time,
                          local, local.spool_id, spool.new_id())

    def _start_on_store(self, new: NewRun, rel: str) -> StartedRun:
        """The run created on the store itself, with its params and datasets (or not at all)."""
        sid, key = spool.new_id(), spool.new_id()
        tags = new.tags
        if self.local_first:  # the Ray executor with a server: a spooled record replaces this run by it
            tags = {**tags, spool.SPOOL_TAG: spool.claim(key)}
        try:
            exp_id = self._experiment_id(new.experiment)
            run_id = self.store.create_run(exp_id, tags, new.run_name, new.start_time)
        except store_errors() as exc:
            raise TrackingError(f"MLflow store {self.uri} refused a new run: {first_line(exc)}") from None
        try:
            self.store.log_params(run_id, new.params)
            if new.datasets:
                self.store.log_datasets(run_id, new.datasets, "training")
        except Exception as exc:  # noqa: BLE001 - not mapped: any failure deletes the run (nothing half-written); only store_errors() become a TrackingError
            try:
                self.store.delete_run(run_id)  # nothing half-written
            except Exception:  # noqa: BLE001 - not mapped: already failing, the first error is the one to say
                pass
            if not isinstance(exc, store_errors()):
                raise
            raise TrackingError(f"could not log the parameters of {rel}: {mask_uri(first_line(exc))}") from None
        self.heartbeat.add(run_id)
        return StartedRun(run_id, exp_id, tags, new.experiment, new.run_name, new.start_time, spool_id=sid,
                          claim_key=key)

    def start_sweep(self, notebook_path: Path, git: GitInfo, grid: dict[str, list]) -> StartedRun:
        """The parent run of a sweep: its grid as params; each point is a child run."""
        rel = relative_to_repo(notebook_path, self.settings.root)
        exp_id = self._experiment_id(self.experiment or rel.removesuffix(".ipynb"))
        tags = sweep_tags(rel, git)
        run_id = self.store.create_run(exp_id, tags, f"sweep {Path(rel).stem}", int(time.time() * 1000))
        self.store.log_params(run_id, sweep_params(grid, self.settings.secret_param_names))
        self.heartbeat.add(run_id)
        return StartedRun(run_id, exp_id, tags)

    def finish_sweep(self, parent: StartedRun, ok: bool, best_run_id: str | None,
                     best_metrics: dict[str, float]) -> None:
        self.heartbeat.remove(parent.run_id)
        self.store.log_metrics(parent.run_id, {f"best.{k}": v for k, v in best_metrics.items()},
                               int(time.time() * 1000))
        if best_run_id:
            self.store.set_tags(parent.run_id, {"nbops.best_run_id": best_run_id})
        self.store.set_terminated(parent.run_id, "FINISHED" if ok else "FAILED")

    def kernel_env(self, started: StartedRun) -> dict[str, str]:
        """What the kernel needs to log into this run (merged over the base environment), and its
        local artifact folder where an embedded store keeps one (`kit.log_text`: no `import mlflow`)."""
        from nbops.run.kernel_env import run_artifacts

        if started.local is not None:
            return {**localrun.kernel_env(started.local, self.uri), "NBOPS_TRACKING_RETRY_S": f"{self.retry_s:g}",
                    **run_artifacts(started.local.uri, started.local.run_id)}
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_REGISTRY_URI": self.uri,
            "MLFLOW_RUN_ID": started.run_id,
            "MLFLOW_EXPERIMENT_ID": started.experiment_id,
            **kernel_retry_env(self.retry_s),  # the same budget as nbops's retries of the record
            "NBOPS_TRACKING_RETRY_S": f"{self.retry_s:g}",
            **run_artifacts(self.uri, started.run_id),
        }

    # -- after the kernel --------------------------------------------------------------------
    def finish(self, started: StartedRun, result: RunResult) -> TrackedRun:
        """The run's record and final status, then its model registered when it may be.
        Logged locally first: NotDelivered when the entry stays in the spool."""
        if started.local is not None:
            return self.delivery.finish_local(started, result)
        run_id = started.run_id
        self.heartbeat.remove(run_id)
        # a server lost mid-run: each request retried, backing off, until the shared deadline
        status = finish_direct.log_record(self.store, run_id, result, time.monotonic() + self.retry_s,
                                          self.settings.html_hide_input)
        if not result.ok:
            return TrackedRun(run_id, started.experiment_id, status, note="run failed: model not registered")
        if self.registrar is None:
            return TrackedRun(run_id, started.experiment_id, status, note="registration off for this run")
        name, version, note = self.registrar(self.client, self.uri, run_id, result.spec.notebook.model)
        return TrackedRun(run_id, started.experiment_id, status, name, version, note)

    def keep_locally(self, started: StartedRun, result: RunResult, exc: BaseException) -> str:
        """A run created on the store directly whose record the store could not take (retried
        until the budget ran out): the whole record goes to the spool for `nbops sync`, which
        replaces the partial run (it carries the entry's claim); a line for the summary."""
        self.heartbeat.remove(started.run_id)
        return self.delivery.keep(started, result, exc)

    def abort(self, started: StartedRun, status: str = "KILLED") -> None:
        self.heartbeat.remove(started.run_id)
        if started.local is not None:  # never reached the server: nothing there to end
            localrun.discard(started.local)
        if not started.run_id:
            return
        try:
            self.store.set_terminated(started.run_id, status)
        except Exception:  # noqa: BLE001 - not mapped: already failing; do not hide the first error
            pass


def _create_embedded(uri: str) -> None:
    """A project's new embedded store made before its writer opens it (run/newstore.py: from the
    cached template, without `import mlflow`), so a first run needs no MLflow client either.
    Whatever fails here is left to MLflow's client (orphans.open_client), which tries again and
    says why in its words."""
    if not uri.startswith("sqlite:///"):
        return
    from nbops.core.errors import NbopsError
    from nbops.run.newstore import create_sqlite

    try:
        create_sqlite(uri)
    except NbopsError:
        raise
    except Exception:  # noqa: BLE001 - not mapped: the same creation is retried, and mapped, by open_client
        pass
