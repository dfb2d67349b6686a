"""A finished run's whole record as a spool entry's parts (run/spool.py): the record's fields and
the files nbops adds to what the kernel logged (records, the executed notebook and its HTML
report, the kernel's log)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nbops.core.errors import first_line
from nbops.core.store import mask_uri
from nbops.notebook.scraps import split_metrics
from nbops.run import render, spool
from nbops.run.engine import RunResult


def status(result: RunResult) -> str:
    return "FINISHED" if result.ok else ("KILLED" if result.status == "interrupted" else "FAILED")


def artifacts(result: RunResult, folder: Path, hide_input: bool, tags: dict[str, str]) -> dict[str, Path]:
    """{artifact path: file} for what nbops logs with every run; files it makes go to FOLDER. A
    report that cannot be rendered is a note in TAGS (`nbops.html_error`), never a lost run."""
    _, others = split_metrics(result.records)
    out: dict[str, Path] = {}
    for name, data in (("records.json", result.records), ("other_records.json", others)):
        if data:
            (folder / name).write_text(json.dumps(data, default=str), encoding="utf-8")
            out[f"nbops/{name}"] = folder / name
    for path in (result.output_path, result.kernel_log):
        if path is not None and path.exists():
            out[f"notebook/{path.name}"] = path
    if result.output_path.exists():
        try:
            (folder / "html").mkdir(exist_ok=True)
            html = render.render_html(result.output_path, folder / "html", hide_input,
                                      name=result.spec.notebook.stem)
            out[f"notebook/{html.name}"] = html
        except Exception as exc:  # noqa: BLE001 - a page to look at is never worth a run
            tags["nbops.html_error"] = first_line(exc)[:500]
    return out


def record(started: Any, result: RunResult, can_register: bool, uri: str, base: dict[str, Any],
           claims: bool = False) -> dict[str, Any]:
    """The entry's record: BASE (params, tags, metrics, datasets the run holds) with the run's
    records, final status and registration intent. STARTED: run/stage_data.py's StartedRun; CLAIMS:
    its run on the store carries the entry's claim, and the upload replaces it."""
    from nbops.core.gates import failed_gates

    metrics, _ = split_metrics(result.records)
    tags = dict(base["tags"])
    tags["nbops.duration_s"] = f"{result.duration:.2f}"
    if result.error:
        tags["nbops.error"] = str(result.error)[:5000]
    model = result.spec.notebook.model
    intent = None
    if model is not None:
        intent = {"name": model.name, "gates": [str(g) for g in model.gates], "compare": model.compare,
                  "higher_is_better": model.higher_is_better,
                  "gates_held": not failed_gates(model.gates, metrics),
                  "register": bool(can_register and result.ok)}
    return {
        "spool_id": started.spool_id, "claim_key": started.claim_key or spool.new_id(),
        "tracking_uri": mask_uri(uri), "experiment": started.experiment,
        "run_name": started.run_name, "server_run_id": (started.run_id or None) if claims else None,
        "notebook": started.tags.get("nbops.notebook", ""), "tags": tags, "params": dict(base["params"]),
        "metrics": list(base["metrics"]) + spool.metric_rows(metrics), "datasets": list(base.get("datasets", [])),
        "status": status(result), "start_time": base.get("start_time") or started.start_time,
        "end_time": int(time.time() * 1000), "model": intent,
    }
