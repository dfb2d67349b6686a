"""A finished run through the spool: a run logged locally first (a tracking server) becomes a
spool entry and is delivered at once, retried with backoff (run/upload.py); when the server
cannot take it, the entry stays for `nbops sync` (NotDelivered); when the entry cannot be
written, the local run is parked whole for `nbops sync` (run/parked.py). A run created on the store
directly whose record the store stopped taking is kept in the spool the same way."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbops.core.context import relative_to_repo
from nbops.core.errors import first_line
from nbops.core.store import mask_uri
from nbops.run import keep, localrun, parked, spool, upload
from nbops.run.run_metadata import param_value
from nbops.run.stage_data import NotDelivered, Registrar, RunResult, StartedRun, TrackedRun


class SpoolDelivery:
    """The spool side of one Tracker (one `nbops run`): once an upload of this batch gave up,
    the next ones are tried once, not for the whole retry budget (the spool keeps them)."""

    def __init__(self, root: Path, uri: str, client: Any, experiment_id: Callable[[str], str],
                 registrar: Registrar | None, retry_s: float, html_hide_input: bool):
        self.root = root
        self.uri = uri
        self.client = client  # MLflow's client (opened lazily)
        self.experiment_id = experiment_id  # the store's experiment id of a name, created if new
        self.registrar = registrar
        self.retry_s = retry_s
        self.html_hide_input = html_hide_input
        self._lost = False  # an upload of this batch gave up: the next ones are spooled at once

    def finish_local(self, started: StartedRun, result: RunResult) -> TrackedRun:
        """The local run becomes a spool entry (locked while it is delivered), then the server
        gets it; when it cannot, the entry stays for `nbops sync` (NotDelivered)."""
        local = started.local
        assert local is not None
        base, files, models = localrun.collect(local)
        record = None
        try:
            work = Path(tempfile.mkdtemp(prefix=".finish-", dir=local.folder))
            files.update(keep.artifacts(result, work, self.html_hide_input, base["tags"]))
            record = keep.record(started, result, self.registrar is not None, self.uri, base)
            entry, fd = spool.write(spool.spool_root(self.root), record, files, models, hold=True)
        except OSError as exc:  # a full disk (the entry copies what the kernel logged): parked whole
            for path in (result.output_path, result.kernel_log):  # if nbops's own files were not made
                if path is not None and path.is_file():
                    files.setdefault(f"notebook/{path.name}", path)
            record = record or keep.record(started, result, self.registrar is not None, self.uri, base)
            where = parked.park(local.folder, local.spool_id, record, files, models)
            raise NotDelivered(self.kept_line(where, f"its spool entry could not be written: "
                                                    f"{first_line(exc)}")) from None
        localrun.discard(local)
        try:
            delivered = self._deliver(entry, record)
            spool.remove(entry)
        except upload.upload_errors() as exc:
            raise NotDelivered(self.kept_line(entry, upload.cause(exc))) from None
        finally:
            spool.release(fd)
        run_id, experiment_id, status = delivered.run_id, delivered.experiment_id, record["status"]
        if not result.ok:
            return TrackedRun(run_id, experiment_id, status, note="run failed: model not registered")
        if self.registrar is None:
            return TrackedRun(run_id, experiment_id, status, note="registration off for this run")
        return TrackedRun(run_id, experiment_id, status, delivered.model_name, delivered.model_version,
                          delivered.note)

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
                return upload.deliver(self.client, self.uri, self.experiment_id, entry, record,
                                      self.registrar)
            except upload.upload_errors() as exc:
                if isinstance(exc, spool.BadEntry) or time.monotonic() + wait > deadline:
                    self._lost = True
                    raise
            time.sleep(wait)
            wait = min(wait * 2, 15.0)

    def kept_line(self, entry: Path, why: str) -> str:
        """The summary's line for a run kept in the spool at ENTRY."""
        where = relative_to_repo(entry, self.root)
        return f"not recorded: kept in {where}; `nbops sync` uploads it ({why})"

    def keep(self, started: StartedRun, result: RunResult, exc: BaseException) -> str:
        """A run created on the store directly whose record the store could not take (EXC, after
        retrying until the budget ran out): the whole record goes to the spool for `nbops sync`,
        which replaces the partial run when it carries the entry's claim; a line for the
        summary."""
        folder = Path(tempfile.mkdtemp(prefix="nbops-spool-"))
        try:
            tags = dict(started.tags)
            files = keep.artifacts(result, folder, self.html_hide_input, tags)
            base = {"tags": tags, "params": {k: param_value(v) for k, v in result.spec.logged_values.items()},
                    "metrics": [], "start_time": started.start_time}
            record = keep.record(started, result, self.registrar is not None, self.uri, base,
                                 claims=_claims(started))
            entry, _ = spool.write(spool.spool_root(self.root), record, files)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return self.kept_line(entry, f"the tracking store did not answer for {self.retry_s:g} s: "
                                     f"{mask_uri(first_line(exc))}")


def _claims(started: StartedRun) -> bool:
    """Whether a spooled record of STARTED may replace its run on the store (it carries the
    entry's spool id); else the record is uploaded as a run of its own."""
    return bool(started.run_id) and started.tags.get(spool.SPOOL_TAG) == spool.claim(started.claim_key)
