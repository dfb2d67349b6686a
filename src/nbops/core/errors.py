"""The one exception tree of nbops.

Every error nbops means to show a user derives from :class:`NbopsError`; the CLI turns it
into one line (plus a hint) and exit code 2. Anything else is a bug: exit 3 with a log.

::

    NbopsError(message, hint=None)
    ├── ConfigError          bad [tool.nbops] table, NBOPS_* variable or flag value
    ├── NotebookError        unreadable notebook, bad metadata.nbops, bad gate expression
    │   └── ParameterError   unknown parameter, value of the wrong type, bad params file
    ├── ExecutionError       nbops could not execute at all (no such kernel, no Ray cluster);
    │                        a notebook that fails is a result, not an error: RunResult.error
    │                        (a CellError with cell, ename, evalue) says where and why
    ├── TrackingError        MLflow store unreachable or refused a write
    ├── RegistryError        no such model, version or alias; a promotion refused
    ├── ModelError           a registered model that cannot load, or predicts nonsense
    ├── DataError            a table file (predict, monitor, retrain): missing, unreadable,
    │                        wrong columns, or an output that cannot be written
    ├── GitError             a git command nbops needs failed (diff, show, worktree)
    └── ReviewError          `nbops check` / `nbops review` could not do their work
"""

from __future__ import annotations


class NbopsError(Exception):
    """Root of every error nbops reports to a user."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        line = self.message
        if self.hint:
            line += f" (hint: {self.hint})"
        return " ".join(line.split())


class ConfigError(NbopsError):
    pass


class NotebookError(NbopsError):
    pass


class ParameterError(NotebookError):
    pass


class ExecutionError(NbopsError):
    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        cell: int | None = None,
        ename: str = "",
        evalue: str = "",
        hint: str | None = None,
    ):
        super().__init__(message, hint)
        self.path = path
        self.cell = cell
        self.ename = ename
        self.evalue = evalue


class TrackingError(NbopsError):
    pass


class RegistryError(NbopsError):
    pass


class ModelError(NbopsError):
    pass


class DataError(NbopsError):
    pass


class GitError(NbopsError):
    pass


class ReviewError(NbopsError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job, `timeout`, `docker stop`): handled exactly like Ctrl-C, so
    kernels are killed, runs end KILLED and temp files and worktrees are removed; exit 143."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (libraries put whole tracebacks or tables in
    theirs), or its type's name when it has none: what a one-line error can quote."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
