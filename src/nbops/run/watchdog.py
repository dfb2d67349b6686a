"""The kernel killed when its notebook overruns `--timeout` or nbops is interrupted (CANCEL);
nbclient then sees a dead kernel at once and the run ends (failure.py says why)."""

from __future__ import annotations

import threading
import time
from typing import Any

from nbops.run.papermill_private import kernel_process

# Set on Ctrl-C while notebooks run in worker threads: every kernel is killed at once, so the
# workers finish (their runs end KILLED) instead of the interrupt waiting for whole notebooks.
CANCEL = threading.Event()


def watchdog(client: Any, seconds: float | None, done: threading.Event, state: dict) -> None:
    """Kill the kernel when the notebook overruns SECONDS or nbops is interrupted (CANCEL), until
    DONE. STATE: "interrupted" or "timed_out" is set here before the kill; while the engine waits
    for nbops's own work ("paused_since"), the deadline waits too ("paused_s" moves it)."""
    limit = time.monotonic() + seconds if seconds else None
    while not done.wait(0.2):
        if limit is not None and "paused_s" in state:
            limit += state.pop("paused_s")
        if CANCEL.is_set():
            state["interrupted"] = True
        elif (limit is not None and "paused_since" not in state and "paused_s" not in state
              and time.monotonic() >= limit):
            state["timed_out"] = True
        else:
            continue
        _kill_kernel(client, done)
        return


def _kill_kernel(client: Any, done: threading.Event) -> None:
    while not done.is_set():  # the kernel may still be starting: wait for its process
        process = kernel_process(client)
        if process is not None:
            try:
                process.kill()
            except OSError:
                pass
            return
        done.wait(0.1)
