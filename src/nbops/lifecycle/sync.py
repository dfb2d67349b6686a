"""`nbops sync`: deliver the runs kept in `.nbops/spool` (run/spool.py) once the server is back.

Each entry is checked whole against the spool's schema before anything is written (a bad one goes
to `.nbops/spool/quarantine/` with one line, and the others go on), then uploaded under its own
lock by run/upload.py, exactly once (the server run carries the entry's claim, a digest of its
private claim_key; a retried or concurrent sync finds it, or waits for nothing: an entry another
process is uploading is left to it). The entry is removed only after the run, its artifacts and
models, and its model version (through the same gates as `nbops run`) are on the server. A run
parked because its entry could not be written (run/parked.py) is made an entry first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import first_line
from nbops.core.store import mask_uri
from nbops.run import localrun, parked, spool, upload


@dataclass(frozen=True)
class Synced:
    spool_id: str
    notebook: str
    run_id: str = ""
    model: str = ""  # "name vN" when a version was registered (now or by an earlier sync)
    note: str = ""
    error: str = ""  # not delivered (kept): why
    quarantined: str = ""  # a bad entry, moved aside: why
    busy: bool = False  # another process is uploading it


@dataclass(frozen=True)
class Waiting:
    """One spool entry as `nbops sync --list` shows it."""
    spool_id: str
    notebook: str
    status: str
    end_time: int
    files: int
    models: int
    problem: str = ""  # why it would be quarantined


def pending(settings: Settings) -> list[Waiting]:
    """What waits in the spool, oldest first (nothing is written)."""
    out = []
    for entry in spool.entries(spool.spool_root(settings.root)):
        try:
            record = spool.validate(entry)
        except spool.BadEntry as exc:
            out.append(Waiting(entry.name, "", "", 0, 0, 0, problem=first_line(exc)))
            continue
        out.append(Waiting(entry.name, record.get("notebook", ""), record["status"], record.get("end_time") or 0,
                           len(record.get("files", [])), record.get("spooled_models", 0)))
    for folder in parked.folders(spool.spool_root(settings.root)):  # entries the next sync writes
        sid = folder.name[len(parked.PREFIX):]
        try:
            data = parked.describe(folder)
        except ValueError as exc:
            out.append(Waiting(sid, "", "", 0, 0, 0, problem=first_line(exc)))
            continue
        record, end = data["record"], data["record"].get("end_time")
        out.append(Waiting(sid, str(record.get("notebook", "")), str(record.get("status", "")),
                           end if isinstance(end, int) else 0, len(data.get("files") or {}),
                           len(data.get("models") or [])))
    return out


def sync_entry(client: Any, uri: str, experiment_id: Callable[[str], str], entry: Path,
               registrar: Any) -> Synced:
    """Validate and deliver one entry under its lock; remove it once it is on the server."""
    with spool.holding(entry) as mine:
        if not mine:
            return Synced(entry.name, "", busy=True)
        try:
            record = spool.validate(entry)
            done = upload.deliver(client, uri, experiment_id, entry, record, registrar)
        except spool.BadEntry as exc:
            why = mask_uri(first_line(exc))
            try:
                spool.quarantine(entry, why)
            except spool.Unsafe as unsafe:  # kept where it is, never uploaded: both said
                return Synced(entry.name, "", error=f"{why}; {first_line(unsafe)}")
            return Synced(entry.name, "", quarantined=why)
        spool.remove(entry)
    model = f"{done.model_name} v{done.model_version}" if done.model_version else ""
    return Synced(record["spool_id"], record.get("notebook", ""), done.run_id, model, done.note)


def sync(settings: Settings, registrar: Any, on_done: Callable[[Synced], None] | None = None) -> list[Synced]:
    """Deliver every spooled run to the project's store; one Synced per entry, in spool order."""
    from nbops.core.store import check_reachable
    from nbops.run.tracking import Tracker

    localrun.sweep_dead(settings.root)  # the local runs of an nbops that was killed -9
    root = spool.spool_root(settings.root)
    out = [Synced(sid, "", error=why) for sid, why in parked.unpark(root)]  # entries from parked runs
    if on_done:
        for done in out:
            on_done(done)
    if not spool.entries(root):
        return out
    check_reachable(settings.resolved_tracking_uri)  # a server that is away: one line, at once
    tracker = Tracker(settings, registrar=registrar)
    for entry in spool.entries(root):
        try:
            done = sync_entry(tracker.client, tracker.uri, tracker._experiment_id, entry, registrar)
        except upload.upload_errors() as exc:
            done = Synced(entry.name, "", error=upload.cause(exc))
        out.append(done)
        if on_done:
            on_done(done)
    return out
