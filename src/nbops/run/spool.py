"""The spool: a run's whole record kept in `.nbops/spool/<id>/` until the tracking server has it.

With a tracking server, every run is logged locally first (run/localrun.py) and written here as an
entry when the kernel is done; run/upload.py then delivers it (at once by `nbops run`, later by
`nbops sync` when the server or its artifact store was away). An entry is the unit of "exactly
once": the server run made from it carries its claim (tag `nbops.spool_id`), a digest of the
record's `claim_key`, a random id that is never printed and never leaves the spool: whoever reads
the server (or the spool ids nbops prints) cannot forge an entry that names a run it did not
make, so a forged entry changes no one else's run. An entry an older nbops wrote has no
claim_key: its runs carry its spool id, which may be public, so run/upload.py reads them only.

One entry is a folder named by its spool id (32 hex digits), written to a hidden temporary folder
and renamed into place, so a reader sees a whole entry or none:

    spool.json      the record: format, spool_id, experiment, run_name, notebook, tags, params,
                    metrics (key, value, timestamp, step: every step), datasets, status (FINISHED,
                    FAILED or KILLED: a RUNNING run is never spooled), start/end time, model
                    (the registration intent: name, gates, compare, register)
    artifacts/      the run's artifacts as they are laid out in MLflow (notebook/<executed>.ipynb,
                    notebook/<report>.html, notebook/<kernel log>, nbops/records.json, figures/...)
    models/<n>/     the models the kernel logged (model.json: name, type, params, tags; files/)

An entry is never trusted: `validate` checks it against the schema (and that nothing under it is a
symlink) before `nbops sync` writes anything; one that fails goes to `quarantine/` with a line
saying why. Each entry is uploaded under an flock of its folder: a second process (another sync,
or the `nbops run` that wrote it) never uploads it at the same time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbops.core.errors import TrackingError

FORMAT = 2
FORMATS = (1, 2)  # format 1: written before runs were logged locally first (no datasets)
SPOOL_DIR = Path(".nbops") / "spool"
QUARANTINE = "quarantine"
SPOOL_TAG = "nbops.spool_id"  # the uploaded run's tag (`claim`): a retried sync finds it instead of duplicating
RECORD = "spool.json"
WHY = "why.txt"  # in a quarantined entry: the one line saying why
FINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
_ID = re.compile(r"^[0-9a-f]{32}$")


class BadEntry(TrackingError):
    """A spool entry that is not one nbops wrote whole (quarantined, never uploaded)."""


class Unsafe(TrackingError):
    """The spool's own folders are not what nbops made (a link planted in them): nothing moved."""


def spool_root(project_root: Path) -> Path:
    return project_root / SPOOL_DIR


def new_id() -> str:
    return uuid.uuid4().hex


def is_id(name: str) -> bool:
    """Whether NAME is a spool id (or claim key): 32 hex digits."""
    return bool(_ID.match(name))


def claim(key: str) -> str:
    """The value of the `nbops.spool_id` tag of the server runs made for the entry whose record's
    claim_key is KEY: a digest, public, of a key that stays private (random, 128 bits)."""
    return hashlib.sha256(f"nbops spool entry {key}".encode()).hexdigest()[:32]


def metric_rows(values: dict[str, float], timestamp_ms: int | None = None, step: int = 0) -> list[dict[str, Any]]:
    """Finite metrics as spool rows (MLflow refuses none, but JSON cannot hold NaN portably)."""
    now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return [{"key": k, "value": float(v), "timestamp": now, "step": step}
            for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)]


def _lock(fd: int, wait: bool) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def write(root: Path, record: dict[str, Any], artifacts: dict[str, Path],
          models: list[tuple[dict[str, Any], Path]] = (), hold: bool = False) -> tuple[Path, int | None]:  # type: ignore[assignment]
    """Write one entry atomically under ROOT: RECORD plus ARTIFACTS ({artifact path: local file})
    and MODELS ([(meta, local folder)]); returns its folder and, with HOLD, the descriptor of its
    lock (taken before the entry appears: release it with `release`). Nothing is left half-written."""
    spool_id = record.get("spool_id") or new_id()
    record = {"format": FORMAT, **record, "spool_id": spool_id}
    root.mkdir(parents=True, exist_ok=True)
    final = root / spool_id
    tmp = root / f".tmp-{spool_id}"
    fd = None
    try:
        (tmp / "artifacts").mkdir(parents=True)
        files = []
        for rel, src in artifacts.items():
            dest = tmp / "artifacts" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            files.append(rel)
        record["files"] = sorted(files)
        metas = []
        for i, (meta, folder) in enumerate(models):
            dest = tmp / "models" / str(i)
            shutil.copytree(folder, dest / "files", symlinks=True)
            (dest / "model.json").write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
            metas.append(meta)
        record["spooled_models"] = len(metas)
        with open(tmp / RECORD, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        if hold:
            fd = os.open(tmp, os.O_RDONLY)
            _lock(fd, wait=True)
        os.rename(tmp, final)
    except BaseException:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, fd


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the lock


@contextmanager
def holding(entry: Path, marker: str = RECORD) -> Iterator[bool]:
    """The entry's upload lock: True when taken (the entry is still there: it holds MARKER), False
    when another process holds it, or the entry was uploaded and removed meanwhile."""
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        yield False
        return
    try:
        yield _lock(fd, wait=False) and (entry / marker).is_file()
    finally:
        os.close(fd)


def _fail(path: Path, why: str) -> BadEntry:
    return BadEntry(f"{path}: {why}", hint="it is kept in .nbops/spool/quarantine/ and never uploaded")


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_metrics(rows: Any) -> str:
    if not isinstance(rows, list):
        return "metrics is not a list"
    for row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("key"), str) and row["key"]
                and isinstance(row.get("value"), int | float) and not isinstance(row.get("value"), bool)
                and _is_int(row.get("timestamp")) and _is_int(row.get("step"))):
            return f"metric row {str(row)[:80]!r} is not {{key, value, timestamp, step}}"
    return ""


def _check_model(model: Any) -> str:
    if model is None:
        return ""
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"]:
        return "model is not {name, gates, ...}"
    gates = model.get("gates", [])
    if not isinstance(gates, list) or not all(isinstance(g, str) for g in gates):
        return "model.gates is not a list of strings"
    if model.get("compare") is not None and not isinstance(model["compare"], str):
        return "model.compare is not a string"
    for flag in ("register", "higher_is_better", "gates_held"):
        if flag in model and not isinstance(model[flag], bool):
            return f"model.{flag} is not true or false"
    return ""


def _check_tree(entry: Path) -> str:
    """No symlink, device or other odd file anywhere under the entry (never followed out of it)."""
    for folder, dirs, files in os.walk(entry, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                return f"{path.relative_to(entry)} is a symlink"
            if not (path.is_dir() or path.is_file()):
                return f"{path.relative_to(entry)} is not a plain file"
    return ""


def _check_record(record: dict[str, Any]) -> str:
    checks = [
        (record.get("format") in FORMATS, f"format {record.get('format')!r} is not one of {FORMATS}"),
        (isinstance(record.get("experiment"), str) and bool(record.get("experiment")), "no experiment"),
        (isinstance(record.get("run_name", ""), str), "run_name is not a string"),
        (isinstance(record.get("notebook", ""), str), "notebook is not a string"),
        (_str_map(record.get("tags")), "tags is not a map of strings"),
        (_str_map(record.get("params")), "params is not a map of strings"),
        (record.get("status") in FINAL_STATUSES,
         f"status {record.get('status')!r} is not one of {', '.join(FINAL_STATUSES)} "
         "(a run still running is never uploaded)"),
        (record.get("start_time") is None or _is_int(record["start_time"]), "start_time is not a number"),
        (record.get("end_time") is None or _is_int(record["end_time"]), "end_time is not a number"),
        (record.get("server_run_id") is None or (isinstance(record["server_run_id"], str)
                                                 and bool(_ID.match(record["server_run_id"]))),
         "server_run_id is not a run id"),
        (record.get("claim_key") is None or (isinstance(record["claim_key"], str)
                                             and bool(_ID.match(record["claim_key"]))),
         "claim_key is not a spool key"),
        (isinstance(record.get("files", []), list), "files is not a list"),
        (isinstance(record.get("datasets", []), list)
         and all(_str_map(d) and {"name", "digest"} <= d.keys() for d in record.get("datasets", [])),
         "datasets is not a list of {name, digest, ...}"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    return _check_metrics(record.get("metrics")) or _check_model(record.get("model"))


def validate(entry: Path) -> dict[str, Any]:
    """The entry's record, checked whole against the schema before anything is uploaded: a
    BadEntry saying why (one line) when any part of it is not what nbops writes."""
    if entry.is_symlink() or not _ID.match(entry.name):
        raise _fail(entry, "not a spool entry (its name is not a spool id)")
    why = _check_tree(entry)
    if why:
        raise _fail(entry, why)
    path = entry / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(path, f"not a spool record ({str(exc)[:80]})") from None
    if not isinstance(record, dict):
        raise _fail(path, "not a spool record (not a JSON object)")
    if record.get("spool_id") != entry.name:
        raise _fail(path, "its spool_id is not its folder's name")
    why = _check_record(record)
    if why:
        raise _fail(path, why)
    artifacts = entry / "artifacts"
    for rel in record.get("files", []):
        if not isinstance(rel, str) or not (artifacts / rel).is_file():
            raise _fail(path, f"artifact {str(rel)[:80]!r} is missing")
    for i, (meta, files) in enumerate(_model_parts(entry)):
        if meta is None:
            raise _fail(entry / "models" / str(i) / "model.json", "not a model description")
        if not files.is_dir():
            raise _fail(entry / "models" / str(i), "the model's files are missing")
    if record.get("spooled_models", 0) != len(_model_parts(entry)):
        raise _fail(path, "its models do not match spooled_models")
    return record


def _model_parts(entry: Path) -> list[tuple[dict[str, Any] | None, Path]]:
    out: list[tuple[dict[str, Any] | None, Path]] = []
    folder = entry / "models"
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir(), key=lambda p: p.name):
        try:
            meta = json.loads((sub / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        ok = (isinstance(meta, dict) and isinstance(meta.get("name"), str)
              and (meta.get("model_type") is None or isinstance(meta["model_type"], str))
              and isinstance(meta.get("params") or {}, dict) and _str_map(meta.get("tags") or {}))
        out.append((meta if ok else None, sub / "files"))
    return out


def models(entry: Path) -> list[tuple[dict[str, Any], Path]]:
    """The entry's spooled models: (meta, folder of the model's files); `validate` checked them."""
    return [(meta, files) for meta, files in _model_parts(entry) if meta is not None]


def entries(root: Path) -> list[Path]:
    """The entries under ROOT, oldest first (a writer's temporary folders, runs still being logged
    and the quarantine are not entries). A folder that is not a whole entry is listed too:
    `validate` says what is wrong with it."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if not p.name.startswith(".") and p.name != QUARANTINE and (p.is_dir() or p.is_symlink())]

    def age(p: Path) -> float:
        try:
            return (p / RECORD).lstat().st_mtime
        except OSError:
            return p.lstat().st_mtime

    return sorted(found, key=age)


def quarantine(entry: Path, why: str) -> Path:
    """Move a bad entry aside (never uploaded, never deleted: a person may want it), with WHY.
    Nothing is followed: a `quarantine` that is a link (the entry would move wherever it points)
    is refused with `Unsafe`, the entry left where it is; a `why.txt` the entry holds is replaced,
    never written through (a link to a file of the user's)."""
    folder = entry.parent / QUARANTINE
    try:
        folder.mkdir()
    except FileExistsError:
        if not stat.S_ISDIR(folder.lstat().st_mode):
            raise Unsafe(f"{folder} is not a folder (a link or a file), so the entry stays in the spool; "
                         "remove it", hint="nbops sync makes the quarantine folder again") from None
    dest = folder / entry.name
    if dest.exists() or dest.is_symlink():
        dest = folder / f"{entry.name}-{new_id()[:8]}"
    os.rename(entry, dest)
    if stat.S_ISDIR(dest.lstat().st_mode):
        (dest / WHY).unlink(missing_ok=True)
        try:
            fd = os.open(dest / WHY, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError:  # put back meanwhile: the line is said anyway (`nbops sync`'s output)
            return dest
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(why + "\n")
    return dest


def remove(entry: Path) -> None:
    """Remove an uploaded entry: renamed away first, so a reader never sees half of one."""
    gone = entry.parent / f".tmp-done-{entry.name}"
    os.rename(entry, gone)
    shutil.rmtree(gone, ignore_errors=True)


def pending_line(project_root: Path) -> str:
    """One line when the spool is not empty ('' when it is)."""
    root = spool_root(project_root)
    from nbops.run.parked import folders  # runs whose entries the next sync writes

    count = len(entries(root)) + len(folders(root))
    if not count:
        return ""
    return (f"note: {count} run(s) not yet recorded are kept in {SPOOL_DIR}; "
            "`nbops sync` uploads them")
