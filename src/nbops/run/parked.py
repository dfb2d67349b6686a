"""A finished local run whose spool entry could not be written (a full disk: the entry copies
what the kernel logged) is parked, never lost: its folder (run/localrun.py's `.run-<id>`, with
its MLflow store, artifacts and models) is renamed `.parked-<id>`, which no sweep removes, and
`parked.json` says what the entry holds. The next `nbops sync` writes the entry (`unpark`) and
uploads it as any other. A parked folder is trusted no more than an entry: the entry is written
from a snapshot of it that follows no link (run/snapshot.py), its files taken only from inside
it, and validated before upload.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from nbops.core.errors import first_line
from nbops.core.files import write_text_atomic
from nbops.run import spool
from nbops.run.snapshot import snapshot

PREFIX = ".parked-"
PARKED = "parked.json"
KEPT = "kept"  # the files nbops logs from outside the folder (the executed notebook), copied in


def park(folder: Path, spool_id: str, record: dict[str, Any], files: dict[str, Path],
         models: list[tuple[dict[str, Any], Path]]) -> Path:
    """FOLDER (a finished local run) parked with what its entry holds; the parked folder. The
    rename comes first: it needs no space, and from then on no sweep takes the run. Where each
    file lies inside FOLDER is read before (MLflow gave the local store resolved paths: a linked
    `.nbops` names the folder otherwise)."""
    roots = (folder, folder.resolve())

    def inside(path: Path) -> str | None:
        for root in roots:
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return None

    within = {rel: inside(path) for rel, path in files.items()}
    placed = [(meta, inside(path)) for meta, path in models]
    parked = folder.with_name(PREFIX + spool_id)
    os.rename(folder, parked)
    kept: dict[str, str] = {}
    dropped = [str(meta.get("name", "model")) for meta, where in placed if where is None]
    for i, (rel, path) in enumerate(sorted(files.items())):
        where = within[rel]
        if where is None:  # outside the run's folder (the executed notebook): kept as it is now
            try:
                where = _keep(path, parked, i)
            except OSError:  # still no space: the file stays where the run wrote it
                dropped.append(rel)
                continue
        kept[rel] = where
    if dropped:
        record.setdefault("tags", {})["nbops.parked_without"] = ", ".join(dropped)[:5000]
    described = [[meta, where] for meta, where in placed if where is not None]
    try:
        write_text_atomic(parked / PARKED, json.dumps({"record": record, "files": kept, "models": described},
                                                      default=str))
    except OSError:  # no space even for this: the folder is kept, and `nbops sync` says so
        pass
    return parked


def _keep(path: Path, parked: Path, i: int) -> str:
    """PATH kept in PARKED, its path there: a copy, or where the disk has no room for one, a
    hard link beside the run's files (no new folder, no space; the executed notebook is
    replaced whole by a later run, so the link keeps this one; a kernel log rewritten in place
    would not be)."""
    try:
        (parked / KEPT / str(i)).mkdir(parents=True)
        shutil.copyfile(path, parked / KEPT / str(i) / path.name)
        return f"{KEPT}/{i}/{path.name}"
    except OSError:
        os.link(path, parked / f"{KEPT}-{i}-{path.name}")
        return f"{KEPT}-{i}-{path.name}"


def folders(root: Path) -> list[Path]:
    """The parked runs under the spool ROOT."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(PREFIX + "*")
                  if spool.is_id(p.name[len(PREFIX):]) and p.is_dir() and not p.is_symlink())


def describe(folder: Path) -> dict[str, Any]:
    """A parked run's record (for `nbops sync --list`); ValueError when it cannot be read."""
    try:
        data = json.loads((folder / PARKED).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder.name}: no readable {PARKED} ({first_line(exc)[:80]}); its MLflow "
                         "store and files are in it") from None
    if not isinstance(data, dict) or not isinstance(data.get("record"), dict):
        raise ValueError(f"{folder.name}: {PARKED} is not a parked run's description")
    return data


def unpark(root: Path) -> list[tuple[str, str]]:
    """Each parked run under the spool ROOT made a spool entry (its folder then removed):
    [(spool id, why not)] for those that are still parked. One another process holds is left."""
    left = []
    for folder in folders(root):
        sid = folder.name[len(PREFIX):]
        with spool.holding(folder, PARKED) as mine:
            if not mine:
                if not (folder / PARKED).exists() and folder.exists():
                    left.append((sid, f"{folder.name}: no {PARKED} (the disk was full); its MLflow "
                                      "store and files are in it"))
                continue
            gone = folder.with_name(f".tmp-done-{folder.name}")
            try:
                if not (root / sid).exists():  # else written by an unpark killed before the removal
                    with snapshot(folder, skip_links=True) as snap:  # as it is now, through no link
                        _write_entry(root, snap, sid)
                os.rename(folder, gone)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, spool.BadEntry) as exc:
                left.append((sid, first_line(exc)))
                continue
        shutil.rmtree(gone, ignore_errors=True)
    return left


def _write_entry(root: Path, folder: Path, sid: str) -> None:
    data = describe(folder)
    record = data["record"]
    if record.get("spool_id") != sid:
        raise ValueError(f"{folder.name}: its spool_id is not its folder's")
    base = folder.resolve()

    def local(rel: Any) -> Path:
        path = folder / str(rel)
        if path.is_symlink() or not path.resolve().is_relative_to(base) or not path.exists():
            raise ValueError(f"{folder.name}: {str(rel)[:80]!r} is not a file of its own")
        return path

    files = {str(rel): local(where) for rel, where in data.get("files", {}).items()}
    models = [(meta, local(where)) for meta, where in data.get("models", [])]
    spool.write(root, record, files, models)
