"""Track runs in MLflow: a run created before the kernel starts, finished after it is gone.

The run id reaches the kernel through MLFLOW_RUN_ID, so `mlflow.<flavor>.log_model(...)` and
autologging inside the notebook land in it. When the kernel exits, MLflow's exit hook marks the
run FINISHED; nbops sets the real final status afterwards. A model is registered only when the
run succeeded, a model was logged and every gate holds.

Where the run is created: in the embedded store directly (it is local: nothing to lose); with a
tracking server or a team's database, in a local store of the run's own first (run/localrun.py),
turned into a spool entry when the kernel is done and delivered at once (run/upload.py); a server
or artifact store that fails at any moment leaves the entry for `nbops sync` (exit 4). The Ray
executor's kernels run elsewhere and log to the server directly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nbops import __version__
from nbops.core.config import Settings
from nbops.core.context import GitInfo, device_name, path_dirty, relative_to_repo, who_ran
from nbops.core.errors import TrackingError, first_line, store_errors
from nbops.core.registry_read import Unavailable
from nbops.core.run_store import ClientStore, LazyClient, open_store
from nbops.core.secrets import MASK, is_secret_value, secret_names
from nbops.core.store import (
    check_writable,
    kernel_retry_env,
    mask_uri,
    retry_env,
    with_retries,
)
from nbops.notebook.document import ModelSpec
from nbops.notebook.scraps import split_metrics
from nbops.run import keep, localrun, orphans, render, spool, upload
from nbops.run.engine import RunResult
from nbops.run.spec import RunSpec

_MAX_PARAM = 6000  # MLflow's limit on a param value's length


class Registrar(Protocol):
    """Registers the model a successful run logged: (model name, version, note on why not).

    The run layer calls it and never imports the registry (`nbops.lifecycle.registry.Registrar`
    is the one nbops uses); None anywhere means "never register"."""

    def __call__(self, client: Any, uri: str, run_id: str,
                 spec: ModelSpec | None) -> tuple[str | None, str | None, str]: ...


@dataclass(frozen=True)
class StartedRun:
    run_id: str  # "" when the server was lost before the run could be created
    experiment_id: str
    tags: dict[str, str]
    experiment: str = ""
    run_name: str = ""
    start_time: int = 0
    local: localrun.LocalRun | None = None  # logged locally first (a tracking server)
    spool_id: str = ""  # the spool entry it becomes when the store cannot take it


class NotDelivered(Exception):  # noqa: N818 - an outcome, not a bug
    """The run is whole in the spool; the server (or its artifact store) did not take it."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    status: str  # FINISHED, FAILED or KILLED
    model_name: str | None = None
    model_version: str | None = None
    note: str = ""  # why no model was registered, or what went wrong


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


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
        self._lost = False  # an upload of this batch gave up: the next ones are spooled at once
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
        root = self.settings.root
        rel = relative_to_repo(spec.notebook.path, root)
        data = {relative_to_repo(p, root) for p in spec.data_files}
        digests = {path: digest for path, digest in spec.inputs.items() if path in data}
        tags = {
            "nbops.git_sha": git.sha,
            "nbops.git_branch": git.branch,
            "nbops.git_dirty": str(git.dirty or path_dirty(root, spec.notebook.path)).lower(),
            "nbops.notebook": rel,
            "nbops.template": spec.notebook.template or "",
            "nbops.fingerprint": spec.fingerprint,
            "nbops.version": __version__,
            "nbops.device": device_name(),
            "nbops.output": relative_to_repo(spec.output_path, root),
            orphans.OWNER_TAG: orphans.owner(),
            orphans.HEARTBEAT_TAG: str(int(time.time())),
            "mlflow.source.name": rel,
            "mlflow.source.type": "NOTEBOOK",
            "mlflow.user": who_ran(),  # MLflow's user_id: the CI actor in CI, else the login
            "mlflow.source.git.commit": git.sha,
            "mlflow.source.git.branch": git.branch,
        }
        if parent_run_id:  # a sweep point: MLflow shows it nested under the sweep's run
            tags["mlflow.parentRunId"] = parent_run_id
        elif self.registrar is None:  # a review run: never a cached result for `nbops plan`
            tags["nbops.review"] = "true"
        if digests:
            combined = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
            tags["nbops.data_digest"] = combined
        name = self.experiment or rel.removesuffix(".ipynb")
        defaults = {p.name: p.default for p in spec.notebook.parameters}
        run_name = render.run_name(spec.notebook.stem, spec.overrides, defaults, spec.secrets)
        now = int(time.time() * 1000)
        params = {k: _param_value(v) for k, v in spec.logged_values.items()}
        datasets = [{"name": path, "digest": digest[:32], "source_type": "local",
                     "source": json.dumps({"uri": (root / path).as_uri()})} for path, digest in digests.items()]
        if self.local_first and not direct:
            local, store = localrun.open_local(root, name, tags, run_name, now)
            try:
                store.log_params(local.run_id, params)
                if datasets:
                    store.log_datasets(local.run_id, datasets, "training")
            except BaseException:
                localrun.discard(local)
                raise
            return StartedRun("", local.experiment_id, tags, name, run_name, now, local, local.spool_id)
        sid = spool.new_id()
        if self.local_first:  # the Ray executor with a server: a spooled record replaces this run by it
            tags = {**tags, spool.SPOOL_TAG: sid}
        try:
            exp_id = self._experiment_id(name)
            run_id = self.store.create_run(exp_id, tags, run_name, now)
        except store_errors() as exc:
            raise TrackingError(f"MLflow store {self.uri} refused a new run: {first_line(exc)}") from None
        try:
            self.store.log_params(run_id, params)
            if datasets:
                self.store.log_datasets(run_id, datasets, "training")
        except Exception as exc:  # noqa: BLE001 - not mapped: any failure deletes the run (nothing half-written); only store_errors() become a TrackingError
            try:
                self.store.delete_run(run_id)  # nothing half-written
            except Exception:  # noqa: BLE001 - not mapped: already failing, the first error is the one to say
                pass
            if not isinstance(exc, store_errors()):
                raise
            raise TrackingError(f"could not log the parameters of {rel}: {mask_uri(first_line(exc))}") from None
        self.heartbeat.add(run_id)
        return StartedRun(run_id, exp_id, tags, name, run_name, now, spool_id=sid)

    def _claims(self, started: StartedRun) -> bool:
        """Whether a spooled record of STARTED may replace its run on the store (it carries the
        entry's spool id); else the record is uploaded as a run of its own."""
        return bool(started.run_id) and started.tags.get(spool.SPOOL_TAG) == started.spool_id

    def start_sweep(self, notebook_path: Path, git: GitInfo, grid: dict[str, list]) -> StartedRun:
        """The parent run of a sweep: its grid as params; each point is a child run."""
        rel = relative_to_repo(notebook_path, self.settings.root)
        exp_id = self._experiment_id(self.experiment or rel.removesuffix(".ipynb"))
        tags = {"nbops.sweep": "true", "nbops.notebook": rel, "nbops.git_sha": git.sha,
                "nbops.git_branch": git.branch, "nbops.version": __version__,
                "mlflow.source.name": rel, "mlflow.source.git.commit": git.sha, "mlflow.user": who_ran(),
                orphans.OWNER_TAG: orphans.owner(), orphans.HEARTBEAT_TAG: str(int(time.time()))}
        run_id = self.store.create_run(exp_id, tags, f"sweep {Path(rel).stem}", int(time.time() * 1000))
        secret = set(secret_names({k: v[0] for k, v in grid.items() if v}, self.settings.secret_param_names))
        secret |= {k for k, v in grid.items() if any(is_secret_value(x) for x in v)}
        self.store.log_params(run_id, {f"grid.{k}": MASK if k in secret else _param_value(v) for k, v in grid.items()})
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
        """What the kernel needs to log into this run (merged over the base environment)."""
        if started.local is not None:
            return {**localrun.kernel_env(started.local, self.uri), "NBOPS_TRACKING_RETRY_S": f"{self.retry_s:g}"}
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_REGISTRY_URI": self.uri,
            "MLFLOW_RUN_ID": started.run_id,
            "MLFLOW_EXPERIMENT_ID": started.experiment_id,
            **kernel_retry_env(self.retry_s),  # the same budget as nbops's retries of the record
            "NBOPS_TRACKING_RETRY_S": f"{self.retry_s:g}",
        }

    # -- after the kernel --------------------------------------------------------------------
    def finish(self, started: StartedRun, result: RunResult) -> TrackedRun:
        if started.local is not None:
            return self._finish_local(started, result)
        run_id = started.run_id
        self.heartbeat.remove(run_id)
        # a server lost mid-run: each request retried, backing off, until the shared deadline
        deadline = time.monotonic() + self.retry_s

        def call(method: Any, *args: Any, **kwargs: Any) -> Any:
            return with_retries(lambda: method(*args, **kwargs), deadline)

        metrics, others = split_metrics(result.records)
        call(self.store.log_metrics, run_id, metrics, int(time.time() * 1000))
        extra_tags = {"nbops.duration_s": f"{result.duration:.2f}"}
        if result.error:
            extra_tags["nbops.error"] = str(result.error)[:5000]
        call(self.store.set_tags, run_id, extra_tags)
        if result.records:
            call(self.store.log_dict, run_id, result.records, "nbops/records.json")
        if others:
            call(self.store.log_dict, run_id, others, "nbops/other_records.json")
        if result.output_path.exists():
            call(self.store.log_artifact, run_id, str(result.output_path), "notebook")
            self._log_html(run_id, result, call)
        if result.kernel_log and result.kernel_log.exists():
            call(self.store.log_artifact, run_id, str(result.kernel_log), "notebook")
        status = "FINISHED" if result.ok else ("KILLED" if result.status == "interrupted" else "FAILED")
        call(self.store.set_terminated, run_id, status)
        if not result.ok:
            return TrackedRun(run_id, started.experiment_id, status, note="run failed: model not registered")
        if self.registrar is None:
            return TrackedRun(run_id, started.experiment_id, status, note="registration off for this run")
        name, version, note = self.registrar(self.client, self.uri, run_id, result.spec.notebook.model)
        return TrackedRun(run_id, started.experiment_id, status, name, version, note)

    def _log_html(self, run_id: str, result: RunResult, call: Any) -> None:
        """notebook/<name>.html beside the .ipynb (shown inline by the MLflow UI); a rendering
        that fails is a note in the run's tags, never a failed run."""
        with tempfile.TemporaryDirectory(prefix="nbops-html-") as folder:
            try:
                html = render.render_html(result.output_path, Path(folder), self.settings.html_hide_input,
                                          name=result.spec.notebook.stem)
            except Exception as exc:  # noqa: BLE001 - a page to look at is never worth a run
                call(self.store.set_tags, run_id, {"nbops.html_error": first_line(exc)[:500]})
                return
            call(self.store.log_artifact, run_id, str(html), "notebook")

    # -- locally first, then uploaded ------------------------------------------------------------
    def _finish_local(self, started: StartedRun, result: RunResult) -> TrackedRun:
        """The local run becomes a spool entry (locked while it is delivered), then the server
        gets it; when it cannot, the entry stays for `nbops sync` (NotDelivered)."""
        local = started.local
        assert local is not None
        work = Path(tempfile.mkdtemp(prefix=".finish-", dir=local.folder))
        base, files, models = localrun.collect(local)
        files.update(keep.artifacts(result, work, self.settings.html_hide_input, base["tags"]))
        record = keep.record(started, result, self.registrar is not None, self.uri, base)
        entry, fd = spool.write(spool.spool_root(self.settings.root), record, files, models, hold=True)
        localrun.discard(local)
        try:
            delivered = self._deliver(entry, record)
            spool.remove(entry)
        except upload.upload_errors() as exc:
            raise NotDelivered(self._kept_line(entry, upload.cause(exc))) from None
        finally:
            spool.release(fd)
        status = record["status"]
        if not result.ok:
            return TrackedRun(delivered.run_id, delivered.experiment_id, status, note="run failed: model not registered")
        if self.registrar is None:
            return TrackedRun(delivered.run_id, delivered.experiment_id, status, note="registration off for this run")
        return TrackedRun(delivered.run_id, delivered.experiment_id, status, delivered.model_name,
                          delivered.model_version, delivered.note)

    def _deliver(self, entry: Path, record: dict[str, Any]) -> upload.Delivered:
        """run/upload.py's delivery, retried with backoff for `tracking_retry_s`; once one run of
        this batch gave up, the next ones are tried once (the spool keeps them)."""
        from nbops.core.store import check_reachable

        deadline = time.monotonic() + (0.0 if self._lost else self.retry_s)
        wait = 1.0
        while True:
            try:
                if self._lost:
                    check_reachable(self.uri, timeout=3.0)
                return upload.deliver(self.client, self.uri, self._experiment_id, entry, record,
                                      self.registrar)
            except upload.upload_errors() as exc:
                if isinstance(exc, spool.BadEntry) or time.monotonic() + wait > deadline:
                    self._lost = True
                    raise
            time.sleep(wait)
            wait = min(wait * 2, 15.0)

    def _kept_line(self, entry: Path, why: str) -> str:
        where = relative_to_repo(entry, self.settings.root)
        return f"not recorded: kept in {where}; `nbops sync` uploads it ({why})"

    def keep_locally(self, started: StartedRun, result: RunResult, exc: BaseException) -> str:
        """A run created on the store directly whose record the store could not take (retried
        until the budget ran out): the whole record goes to the spool for `nbops sync`, which
        replaces the partial run (it carries the entry's spool id); a line for the summary."""
        self.heartbeat.remove(started.run_id)
        folder = Path(tempfile.mkdtemp(prefix="nbops-spool-"))
        try:
            tags = dict(started.tags)
            files = keep.artifacts(result, folder, self.settings.html_hide_input, tags)
            record = keep.record(started, result, self.registrar is not None, self.uri,
                                 {"tags": tags, "params": {k: _param_value(v) for k, v in result.spec.logged_values.items()},
                                  "metrics": [], "start_time": started.start_time},
                                 claims=self._claims(started))
            entry, _ = spool.write(spool.spool_root(self.settings.root), record, files)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return self._kept_line(entry, f"the tracking store did not answer for {self.retry_s:g} s: "
                                      f"{mask_uri(first_line(exc))}")

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
