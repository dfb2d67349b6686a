"""What went wrong in a run, as a CellError: the exception papermill raised, named for the
summary (`failure_of`), and the cell the executed notebook stopped at (`locate_failure`)."""

from __future__ import annotations

from typing import Any

from nbops.run.saving import OutputWriteError
from nbops.run.spec import RunSpec
from nbops.run.stage_data import CellError

# papermill's own cells in an executed notebook: never counted in a cell's number
_SKIP_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
# what execute() raises instead of calling a failed run: a bug (nbops's or papermill's)
_BUGS = (AttributeError, NameError, TypeError, AssertionError)


def failure_of(exc: Exception, spec: RunSpec, state: dict[str, Any]) -> CellError | None:
    """The failure papermill's EXC means (its cell not yet known), or None for a bug, which the
    caller raises: exit 3 with its traceback, shown with --debug. STATE: what the engine's
    watchdog noted (Ctrl-C, the notebook's deadline)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, OutputWriteError):  # a full disk
        return CellError(None, "OutputWriteError", f"cannot write the executed notebook: {exc.strerror}")
    if isinstance(exc, PapermillExecutionError):
        return CellError(None, exc.ename, exc.evalue)
    if isinstance(exc, CellTimeoutError):
        return CellError(None, "CellTimeout", f"a cell ran longer than {spec.cell_timeout:g} s")
    if isinstance(exc, DeadKernelError):
        if state.get("interrupted"):
            return CellError(None, "Interrupted", "stopped by Ctrl-C")
        if state.get("timed_out"):
            return CellError(None, "NotebookTimeout", f"the notebook ran longer than {spec.timeout:g} s")
        return CellError(None, "DeadKernel", "the kernel died (see the kernel log)")
    if isinstance(exc, _BUGS):
        return None
    # the kernel never started, papermill refused the notebook: a failed run
    return CellError(None, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def _kept(cells: list) -> list[tuple[int, dict]]:
    """(1-based position, cell) of the cells that are not papermill's injected-parameters or
    error-marker cells (papermill removes a notebook's old markers and adds its own)."""
    return [(i, c) for i, c in enumerate(cells, 1)
            if isinstance(c, dict) and not _SKIP_TAGS & set(c.get("metadata", {}).get("tags") or [])]


def locate_failure(nb: dict, source: dict | None = None) -> CellError | None:
    """Where an executed notebook stopped: the cell papermill flagged as raising, else the first
    error output, else the last cell papermill started (a dead kernel or a timeout leaves no
    error output). Cell numbers count the cells of SOURCE (the notebook as the user sees it, old
    error markers of an earlier papermill run included); the executed notebook's own injected
    and error-marker cells are not counted."""
    cells = [c for _, c in _kept(nb.get("cells", []))]
    positions = [i for i, _ in _kept(source.get("cells", []))] if source else []

    def number(k: int) -> int:  # the k-th kept executed cell is the k-th kept source cell
        return positions[k - 1] if len(positions) == len(cells) else k

    last_started = None
    for k, cell in enumerate(cells, 1):  # papermill flags the cell that raised
        if (cell.get("metadata", {}).get("papermill") or {}).get("exception"):
            errors = [o for o in cell.get("outputs") or [] if o.get("output_type") == "error"]
            err = errors[-1] if errors else {}
            return CellError(number(k), err.get("ename", "Error"), err.get("evalue", ""))
    for k, cell in enumerate(cells, 1):
        for out in cell.get("outputs") or []:
            if out.get("output_type") == "error":
                if out.get("ename") == "SystemExit" and out.get("evalue") in ("", "0"):
                    continue
                return CellError(number(k), out.get("ename", "Error"), out.get("evalue", ""))
        if (cell.get("metadata", {}).get("papermill") or {}).get("start_time"):
            last_started = number(k)
    return CellError(last_started, "", "") if last_started else None
