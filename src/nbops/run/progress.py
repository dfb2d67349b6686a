"""What `nbops run` and `nbops sweep` show while notebooks execute.

On a terminal: a live table (rich) of the running notebooks with their current cell `i/n` and
elapsed time, and the finished ones with their status. Without a terminal (CI logs): one plain
line per event. `--quiet`: nothing. Events arrive from worker threads; each reporter locks.
Notebook names and error messages are the user's text: they reach rich as `Text`, never as
markup (a cell error `[/x]` would crash the display, `[bold]` would restyle it).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """The quiet reporter, and the interface: started, cell, finished, close."""

    def started(self, name: str) -> None:
        pass

    def cell(self, name: str, index: int, total: int) -> None:
        pass

    def finished(self, name: str, ok: bool, duration: float, detail: str = "") -> None:
        pass

    def skipped(self, name: str, detail: str) -> None:
        """A pipeline's notebook not run: a notebook it needs did not succeed."""
        self.finished(name, False, 0.0, f"skipped: {detail}")

    def close(self) -> None:
        pass


class PlainProgress(Progress):
    def __init__(self, file: TextIO):
        self.file = file
        self.lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self.lock:
            print(f"nbops: {text}", file=self.file, flush=True)

    def started(self, name: str) -> None:
        self._say(f"start {name}")

    def finished(self, name: str, ok: bool, duration: float, detail: str = "") -> None:
        status = "ok" if ok else "FAILED"
        self._say(f"{status} {name} in {duration:.1f}s" + (f": {detail}" if detail else ""))

    def skipped(self, name: str, detail: str) -> None:
        self._say(f"SKIPPED {name}: {detail}")


class LiveProgress(Progress):
    def __init__(self, file: TextIO):
        from rich.console import Console
        from rich.live import Live

        self.lock = threading.Lock()
        self.running: dict[str, list] = {}  # name -> [start time, cell index, cell total]
        self.done: list[tuple[str, bool, float, str]] = []
        self.live = Live(self._render(), console=Console(file=file), refresh_per_second=4,
                         transient=True, get_renderable=self._render)
        self.live.start()

    def _render(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False)
        now = time.monotonic()
        for name, ok, duration, detail in self.done[-10:]:
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            table.add_row(mark, Text(name), f"{duration:.1f}s", Text(detail))
        for name, (start, index, total) in list(self.running.items()):
            cell = f"cell {index}/{total}" if total else "starting kernel"
            table.add_row("[yellow]…[/]", Text(name), f"{now - start:.1f}s", cell)
        return table

    def started(self, name: str) -> None:
        with self.lock:
            self.running[name] = [time.monotonic(), 0, 0]

    def cell(self, name: str, index: int, total: int) -> None:
        with self.lock:
            if name in self.running:
                self.running[name][1:] = [index, total]

    def finished(self, name: str, ok: bool, duration: float, detail: str = "") -> None:
        with self.lock:
            self.running.pop(name, None)
            self.done.append((name, ok, duration, detail))

    def close(self) -> None:
        self.live.stop()


def make_progress(quiet: bool = False, file: TextIO | None = None) -> Progress:
    file = file or sys.stderr
    if quiet:
        return Progress()
    return LiveProgress(file) if file.isatty() else PlainProgress(file)
