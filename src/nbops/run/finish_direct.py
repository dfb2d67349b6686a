"""A finished notebook's record written to a run created on the store directly (the embedded
store, or the Ray executor's run on a server): metrics, tags, records, the executed notebook,
its HTML page and the kernel log, then the final status. Each call is retried, backing off,
until one shared deadline; a store still failing then raises (tracking.py keeps the record
in the spool instead)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from nbops.core.errors import first_line
from nbops.core.store import with_retries
from nbops.notebook.scraps import split_metrics
from nbops.run import render
from nbops.run.stage_data import RunResult


def final_status(result: RunResult) -> str:
    return "FINISHED" if result.ok else ("KILLED" if result.status == "interrupted" else "FAILED")


def log_record(store: Any, run_id: str, result: RunResult, deadline: float, html_hide_input: bool) -> str:
    """RESULT logged into RUN_ID on STORE and the run ended; its final status. DEADLINE: the
    time.monotonic() until which a failing request is retried (a server lost mid-run)."""

    def call(method: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retries(lambda: method(*args, **kwargs), deadline)

    metrics, others = split_metrics(result.records)
    call(store.log_metrics, run_id, metrics, int(time.time() * 1000))
    extra_tags = {"nbops.duration_s": f"{result.duration:.2f}"}
    if result.error:
        extra_tags["nbops.error"] = str(result.error)[:5000]
    call(store.set_tags, run_id, extra_tags)
    if result.records:
        call(store.log_dict, run_id, result.records, "nbops/records.json")
    if others:
        call(store.log_dict, run_id, others, "nbops/other_records.json")
    if result.output_path.exists():
        call(store.log_artifact, run_id, str(result.output_path), "notebook")
        _log_html(store, run_id, result, call, html_hide_input)
    if result.kernel_log and result.kernel_log.exists():
        call(store.log_artifact, run_id, str(result.kernel_log), "notebook")
    status = final_status(result)
    call(store.set_terminated, run_id, status)
    return status


def _log_html(store: Any, run_id: str, result: RunResult, call: Any, html_hide_input: bool) -> None:
    """notebook/<name>.html beside the .ipynb (shown inline by the MLflow UI); a rendering
    that fails is a note in the run's tags, never a failed run."""
    with tempfile.TemporaryDirectory(prefix="nbops-html-") as folder:
        try:
            html = render.render_html(result.output_path, Path(folder), html_hide_input,
                                      name=result.spec.notebook.stem)
        except Exception as exc:  # noqa: BLE001 - a page to look at is never worth a run
            call(store.set_tags, run_id, {"nbops.html_error": first_line(exc)[:500]})
            return
        call(store.log_artifact, run_id, str(html), "notebook")
