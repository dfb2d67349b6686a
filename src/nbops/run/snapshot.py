"""What is uploaded of a spool entry is a snapshot of it, taken under the entry's lock: `validate`
(run/spool.py) refuses an entry with a link anywhere under it, but someone who can write the
spool could swap a file for a link (to the user's key) after that check and before the upload
read it. The snapshot is a private folder of hard links to the entry's plain files (no space
needed; a copy, opened without following links, where a link is refused), walked by folder
descriptors that never follow a link, and validated again: the upload reads only what it holds.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nbops.run.spool import BadEntry


@contextmanager
def snapshot(entry: Path, skip_links: bool = False) -> Iterator[Path]:
    """ENTRY as it is now, in a private folder (removed afterwards; one a killed process left is
    swept by run/localrun.py, which its owner file tells when: an upload may take hours);
    BadEntry when anything under it is not a plain file or folder, unless SKIP_LINKS (a parked
    run's folder, where a kernel may have made a link MLflow logs no file of: left out)."""
    from nbops.run.localrun import OWNER_FILE
    from nbops.run.orphans import owner

    base = Path(tempfile.mkdtemp(prefix=".tmp-snap-", dir=entry.parent))
    snap = base / entry.name
    try:
        (base / OWNER_FILE).write_text(owner(), encoding="utf-8")
        for where, folders, files, fd in os.fwalk(entry, follow_symlinks=False):
            here = snap / os.path.relpath(where, entry)
            here.mkdir()
            for name in folders:  # a folder swapped for a link is listed here, never walked into
                if not stat.S_ISDIR(os.lstat(name, dir_fd=fd).st_mode) and not skip_links:
                    raise _linked(entry, here / name, snap)
            for name in files:
                if skip_links and stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
                    continue
                _take(name, fd, here / name, entry, snap)
        yield snap
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _take(name: str, fd: int, dest: Path, entry: Path, snap: Path) -> None:
    try:
        os.link(name, dest, src_dir_fd=fd, follow_symlinks=False)  # a link is linked as a link
    except OSError:  # refused (another user's file, protected_hardlinks; no hard links here)
        try:  # never blocks on a FIFO put in its place
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _linked(entry, dest, snap) from None
            raise
        with os.fdopen(src, "rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                raise _linked(entry, dest, snap) from None
            with open(dest, "xb") as out:
                shutil.copyfileobj(source, out)
    if not stat.S_ISREG(os.lstat(dest).st_mode):
        raise _linked(entry, dest, snap)


def _linked(entry: Path, dest: Path, snap: Path) -> BadEntry:
    return BadEntry(f"{entry}: {dest.relative_to(snap)} is a symlink (or not a plain file)",
                    hint="it is kept in .nbops/spool/quarantine/ and never uploaded")
