"""How papermill writes the executed notebook while it runs, made safe for threads, full disks and
long notebooks.

- papermill's local file handler is one object for the whole process. It keeps a working
  directory between calls (`local_file_io_cwd` sets it and restores it, racily under threads)
  and `os.chdir()`s the whole process around every read and write. Notebooks run in threads
  (`--jobs`) left the process in another run's folder (even a previous `nbops run`'s, in the
  same process), so relative paths resolved there. nbops hands papermill absolute paths and
  registers a handler for them (papermill matches handlers by prefix: "/") that never changes
  directory.
- Each write goes to a temporary file beside the target and replaces it only once complete: a
  full disk (or any failed write) leaves no truncated notebook, and raises `OutputWriteError`,
  which the engine reports as a failed run.
- papermill saves the whole notebook at the start and the end of every cell: O(cells) per cell,
  O(cells^2) for a notebook (a 5,000-cell notebook ran 83 cells in two minutes). `Saves` keeps
  the first and the last save and, in between, saves at most once per `MIN_INTERVAL_S` and
  never more than a small share of the time (a save that took long makes the next wait longer).
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

MIN_INTERVAL_S = 1.0  # between two progressive saves of the executed notebook
MAX_SHARE = 0.05  # of the run's time spent in progressive saves


class OutputWriteError(OSError):
    """The executed notebook could not be written (a full disk, a file size limit, ...)."""


def write_atomic(buf: str, path: str) -> None:
    """BUF to PATH whole or not at all (core/files.py's `replacing`): PATH gets a normal file's
    mode (0666 less the umask), not mkstemp's 0600: the executed notebook is logged to MLflow
    as it is, and a team reads it there. A failed write is an OutputWriteError naming PATH."""
    from nbops.core.files import write_text_atomic

    try:
        write_text_atomic(Path(path), buf)
    except OSError as exc:
        raise OutputWriteError(exc.errno, exc.strerror or str(exc), path) from exc


@functools.cache
def install_local_io() -> None:
    """Register (once per process) a papermill handler for absolute paths: papermill's local
    handler without its chdir, with atomic writes."""
    from papermill.iorw import LocalHandler, papermill_io

    class AbsolutePathHandler(LocalHandler):
        def cwd(self, new_path: Any) -> None:  # paths are absolute: never chdir the process
            return None

        def write(self, buf: str, path: str) -> None:
            dirname = os.path.dirname(path)
            if dirname and not os.path.exists(dirname):
                raise FileNotFoundError(f"output folder {dirname} doesn't exist.")
            write_atomic(buf, path)

    # papermill picks the first handler whose scheme prefixes the path (LIFO); its local
    # handler is only the fallback, so an absolute path never reaches it
    papermill_io.register("/", AbsolutePathHandler())


class Saves:
    """Replaces a papermill NotebookExecutionManager's per-cell saves by throttled ones; the
    notebook's start and end (and papermill's error markers, written directly) always save."""

    def __init__(self, nb_man: Any, min_interval: float = MIN_INTERVAL_S):
        self.nb_man, self.min_interval = nb_man, min_interval
        self.write = nb_man.save  # papermill's own (bound) save
        self.last = time.monotonic()  # papermill saved the notebook as it started
        self.spent = 0.0
        self.started = time.monotonic()
        complete = nb_man.notebook_complete

        def notebook_complete(**kwargs: Any) -> Any:
            nb_man.save = self.now  # the last save is never skipped
            return complete(**kwargs)

        nb_man.save = self.maybe
        nb_man.notebook_complete = notebook_complete

    def now(self, **kwargs: Any) -> None:
        began = time.monotonic()
        self.write(**kwargs)
        self.last = time.monotonic()
        self.spent += self.last - began

    def maybe(self, **kwargs: Any) -> None:
        if kwargs.get("nb"):  # what papermill's own save would do before saving
            self.nb_man.nb = kwargs["nb"]
        now = time.monotonic()
        if now - self.last < self.min_interval:
            return
        if self.spent > MAX_SHARE * (now - self.started) and now - self.last < 60.0:
            return  # saves cost more than their share: wait (but show progress every minute)
        self.now(**kwargs)
