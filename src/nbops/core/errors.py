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

No message can carry a credential: an error's message, hint and str() pass through `mask_uri`
when they are made, wherever it is raised (a tracking URI `http://user:pw@host` quoted in a
message prints as `http://***@host`).
"""

from __future__ import annotations

import re

# user:password@ (or a token@) inside a URI: never printed or stored. Up to the last `@` before
# the host's end, so a password holding a raw `@` is masked whole.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/?#\s@]*@(?:[^/?#\s@]*@)*")


def mask_uri(text: str) -> str:
    """TEXT with the credentials of every URI in it replaced by `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)


class NbopsError(Exception):
    """Root of every error nbops reports to a user."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(mask_uri(str(message)))
        self.message = message
        self.hint = hint

    # message and hint are masked when set, so code that builds or rewrites them later (or a
    # subclass) cannot put a credential back
    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = mask_uri(str(value))
        self.args = (self._message, *self.args[1:])

    @property
    def hint(self) -> str | None:
        return self._hint

    @hint.setter
    def hint(self, value: str | None) -> None:
        self._hint = None if value is None else mask_uri(str(value))

    def __str__(self) -> str:
        return mask_uri(super().__str__())

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
        self.evalue = mask_uri(evalue)


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
    return mask_uri((str(exc).strip().splitlines() or [type(exc).__name__])[0])
