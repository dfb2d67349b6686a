"""The one exception tree of nbops, and the one map from MLflow's exceptions into it.

Every error nbops means to show a user derives from :class:`NbopsError`; the CLI turns it
into one line (plus a hint) and exit code 2. Anything else is a bug: exit 3 with a log.

::

    NbopsError(message, hint=None)
    ├── ConfigError           bad [tool.nbops] table, NBOPS_* variable or flag value
    ├── InputError            a value handed to nbops does not fit (also a ValueError): rows that
    │   │                     do not fit a model's signature (lifecycle/models.py)
    │   └── PayloadError      a `nbops serve` request body (lifecycle/serve/payload.py): HTTP 400
    ├── NotebookError         unreadable notebook, bad metadata.nbops, bad gate expression
    │   └── ParameterError    unknown parameter, value of the wrong type, bad params file
    ├── ExecutionError        nbops could not execute at all (no such kernel, no Ray cluster):
    │                         path, cell, ename, evalue where known; a notebook that fails is a
    │                         result, not an error: RunResult.error (a CellError) says where and why
    ├── TrackingError         the MLflow store cannot be used (nbops's own checks: core/store.py)
    │   ├── StoreError        the store failed or refused a call (map_mlflow_errors, below); any
    │   │   │                 other of MLflow's codes, when the caller names no error of its own
    │   │   ├── StoreUnreachable  down, timed out, a 5xx, TEMPORARILY_UNAVAILABLE: worth a retry
    │   │   ├── StoreAuthError    UNAUTHENTICATED, PERMISSION_DENIED (HTTP 401/403)
    │   │   ├── NotFound          RESOURCE_DOES_NOT_EXIST: no such run, experiment, model, version
    │   │   ├── AlreadyExists     RESOURCE_ALREADY_EXISTS
    │   │   └── StoreInputError   INVALID_PARAMETER_VALUE, MALFORMED_REQUEST (also an InputError)
    │   ├── BadEntry          a spool entry that cannot be uploaded (run/spool.py)
    │   ├── Unsafe            a link planted in the spool's own folders: nothing moved (run/spool.py)
    │   └── ArtifactStoreError  the artifact store failed under an upload (run/upload.py)
    ├── RegistryError         no such model, version or alias; a promotion refused
    ├── ModelError            a registered model that cannot load, or predicts nonsense
    ├── DataError             a table file (predict, monitor, retrain): missing, unreadable,
    │                         wrong columns, or an output that cannot be written
    ├── GitError              a git command nbops needs failed (diff, show, worktree)
    └── ReviewError           `nbops check` / `nbops review` could not do their work

Not errors, and so outside the tree (tests/unit/test_error_tree.py lists them): `Terminated`
(SIGTERM, a KeyboardInterrupt), and signals one module raises to another: `NotDelivered`
(run/stage_data.py: a run kept in the spool, exit 4), `Unavailable` (core/mlflow_db.py: ask
MLflow instead), `_Delegate` (core/sqlite_writer.py), `OutputWriteError` (run/saving.py, an
OSError), and the pytest plugin's outcomes (`SmokeFailure`, `BrokenNotebook`).

MLflow's exceptions (and requests', urllib3's and the socket's under a remote store) become
nbops errors in one place: `with map_mlflow_errors(store=uri, what="cannot read run X"):` (in
the style of httpx's `map_exceptions`). The kind is read from the exception's `error_code` and
its cause chain, never from its message text; `store_error_kind(exc)` answers the same question
for code that retries or keeps a run for later.

No message can carry a credential: an error's message, hint and str() pass through `mask_uri`
when they are made, wherever it is raised (a tracking URI `http://user:pw@host` quoted in a
message prints as `http://***@host`); the map also masks `Bearer`/`Basic` tokens.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


class InputError(NbopsError, ValueError):
    """A value handed to nbops does not fit; a ValueError too, for callers that catch those."""


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
    """The MLflow store failed or refused. STORE (masked) and CODE (MLflow's `error_code`, or
    the HTTP status) are set where map_mlflow_errors made it."""

    store: str = ""
    code: str = ""


class StoreError(TrackingError):
    """What map_mlflow_errors raises for the store; `store_errors()` catches it (a retry, the spool)."""


class StoreUnreachable(StoreError):
    pass


class StoreAuthError(StoreError):
    pass


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class StoreInputError(StoreError, InputError):
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


# -- MLflow's exceptions, mapped ------------------------------------------------------------------
# by MLflow's `error_code` (mlflow/protos/databricks.proto); any other code is the caller's ERROR
_BY_CODE: dict[str, type[StoreError]] = {
    "RESOURCE_DOES_NOT_EXIST": NotFound, "NOT_FOUND": NotFound,
    "RESOURCE_ALREADY_EXISTS": AlreadyExists, "ALREADY_EXISTS": AlreadyExists,
    "INVALID_PARAMETER_VALUE": StoreInputError, "MALFORMED_REQUEST": StoreInputError,
    "UNAUTHENTICATED": StoreAuthError, "PERMISSION_DENIED": StoreAuthError,
    "CUSTOMER_UNAUTHORIZED": StoreAuthError,
    # the SQL store's OperationalError (a database locked, down or gone) is TEMPORARILY_UNAVAILABLE
    "TEMPORARILY_UNAVAILABLE": StoreUnreachable, "SERVICE_UNDER_MAINTENANCE": StoreUnreachable,
    "WORKSPACE_TEMPORARILY_UNAVAILABLE": StoreUnreachable, "DEADLINE_EXCEEDED": StoreUnreachable,
    "REQUEST_LIMIT_EXCEEDED": StoreUnreachable,
}
# by HTTP status, for a response requests raised on (an artifact upload) or a server's answer
_BY_STATUS: dict[int, type[StoreError]] = {401: StoreAuthError, 403: StoreAuthError, 404: NotFound,
                                              408: StoreUnreachable, 429: StoreUnreachable}
_HINTS: dict[type[StoreError], str] = {
    StoreUnreachable: "is the store up? try again later; `nbops doctor` checks it (nbops config shows the store)",
    StoreAuthError: "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth), or "
                    "MLFLOW_TRACKING_TOKEN (a bearer token); or ask the server's admin for a permission",
}
_TOKENS = re.compile(r"\b(bearer|basic|token)(\s+|=)[\w.~+/=-]{8,}", re.I)


def mask_secrets(text: str) -> str:
    """mask_uri, and `Bearer`/`Basic` tokens (a response or header quoted by a library)."""
    return _TOKENS.sub(lambda m: f"{m.group(1)}{m.group(2)}***", mask_uri(text))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """EXC and what caused it (`raise ... from`, or raised while handling), innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_types() -> tuple[type[BaseException], ...]:
    """The connection failures of a remote store: the socket's, and those of requests and urllib3
    where they are loaded (MLflow's REST client raises them, or an MlflowException over them)."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    requests = sys.modules.get("requests.exceptions")
    if requests is not None:
        kinds += [requests.ConnectionError, requests.Timeout, requests.RetryError,
                  requests.ChunkedEncodingError]
    urllib3 = sys.modules.get("urllib3.exceptions")
    if urllib3 is not None:
        kinds += [urllib3.MaxRetryError, urllib3.NewConnectionError, urllib3.ProtocolError,
                  urllib3.TimeoutError]
    import socket

    kinds.append(socket.gaierror)
    return tuple(kinds)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a response EXC was raised for (requests' HTTPError), else None."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def store_errors() -> tuple[type[BaseException], ...]:
    """The exception types of a store failing, for an `except` clause that retries or keeps a run
    for later (what it catches is a failure, never a bug): MLflow's (its client raises nothing
    else), requests' and urllib3's, the socket's and the disk's (OSError), the sqlite writer's
    OperationalError (a locked, busy, full or read-only database), and the map's StoreError (not
    every TrackingError: nbops's own checks, a read-only store say, are no failure to retry)."""
    import sqlite3

    kinds: tuple[type[BaseException], ...] = (OSError, sqlite3.OperationalError, StoreError)
    for module, names in (("mlflow.exceptions", ("MlflowException",)),
                          ("requests.exceptions", ("RequestException",)),
                          ("urllib3.exceptions", ("HTTPError",))):
        loaded = sys.modules.get(module)  # not imported: none of its exceptions can be raised
        if loaded is not None:
            kinds += tuple(getattr(loaded, name) for name in names)
    return kinds


def store_error_kind(exc: BaseException) -> type[StoreError] | None:
    """The nbops error EXC means when it comes from the MLflow store, or None when it is not one
    of MLflow's, requests', urllib3's or the socket's failures (a bug, or not the store's).
    StoreError itself means "the store refused, for a reason of its own" (the caller's error)."""
    mlflow = sys.modules.get("mlflow.exceptions")  # not imported: cannot be one of MLflow's
    network = _network_types()
    if mlflow is not None and isinstance(exc, mlflow.MlflowException):
        kind = _BY_CODE.get(str(getattr(exc, "error_code", "")))
        if kind is not None:
            return kind
        if any(isinstance(e, network) for e in _chain(exc)):
            return StoreUnreachable  # the REST client's "API request ... failed", over a socket's error
        if isinstance(exc, mlflow.RestException) and exc.get_http_status_code() >= 500:
            return StoreUnreachable  # the server answered, with a server error
        return StoreError
    status = _status(exc)
    if status is not None:
        return _BY_STATUS.get(status, StoreUnreachable if status >= 500 else StoreError)
    if isinstance(exc, network) or _is_sqlite_operational(exc):
        return StoreUnreachable  # sqlite: locked, busy or read-only, as MLflow's SQL store says it
    requests = sys.modules.get("requests.exceptions")
    urllib3 = sys.modules.get("urllib3.exceptions")
    if ((requests is not None and isinstance(exc, requests.RequestException))
            or (urllib3 is not None and isinstance(exc, urllib3.HTTPError))):
        return StoreError  # a bad URL, too many redirects: refused, for a reason of its own
    return None


def _is_sqlite_operational(exc: BaseException) -> bool:
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(exc, sqlite3.OperationalError)


def _reason(exc: BaseException, kind: type[StoreError]) -> str:
    """What to say after "WHAT: ": MLflow's first line, less its code prefix; for a store that did
    not answer, the socket's reason rather than urllib3's retry report."""
    if kind is StoreUnreachable:
        import socket

        causes = list(_chain(exc))
        requests = sys.modules.get("requests.exceptions")
        urllib3 = sys.modules.get("urllib3.exceptions")
        timeouts: tuple[type[BaseException], ...] = (TimeoutError,)
        server_errors: tuple[type[BaseException], ...] = ()
        if requests is not None:
            timeouts += (requests.Timeout,)
            server_errors += (requests.RetryError,)
        if urllib3 is not None:
            timeouts += (urllib3.TimeoutError,)
            server_errors += (urllib3.ResponseError,)
        if any(isinstance(e, ConnectionRefusedError) for e in causes):
            return "not reachable: connection refused (is it down?)"
        if any(isinstance(e, timeouts) for e in causes):
            return "not reachable: no answer in time (stalled or overloaded)"
        if any(isinstance(e, socket.gaierror) for e in causes):
            return "not reachable: unknown host"
        if any(isinstance(e, server_errors) for e in causes):
            return "the server kept answering with errors (HTTP 5xx)"
    line = first_line(exc)
    code = str(getattr(exc, "error_code", ""))
    if code and line.startswith(f"{code}: "):  # a RestException says its code first
        line = line[len(code) + 2:]
    return line


@contextmanager
def map_mlflow_errors(*, what: str, store: str = "", error: type[NbopsError] = TrackingError,
                      hint: str | None = None) -> Iterator[None]:
    """Inside the block, a failure of the MLflow store (store_error_kind) is raised again as one
    nbops error: "WHAT: <reason>" with credentials masked, of the kind its `error_code` or cause
    says (StoreUnreachable, StoreAuthError, NotFound, AlreadyExists, StoreInputError), or ERROR
    for any other refusal (StoreError when ERROR is TrackingError, the default). HINT is said
    with a refusal (an unreachable store and a login have hints of their own). STORE (masked) is
    named when it did not answer. Anything else propagates untouched: nbops's own errors, and
    bugs with their tracebacks."""
    try:
        yield
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below; whatever is not the store's propagates
        kind = store_error_kind(exc)
        if kind is None:
            raise
        # a refusal of no known kind is the caller's ERROR (a StoreError where it names none)
        cls: type[NbopsError] = kind if kind is not StoreError or error is TrackingError else error
        reason = _reason(exc, kind)
        where = f"{mask_uri(store)} is " if store and reason.startswith("not reachable") else ""
        mapped = cls(mask_secrets(f"{what}: {where}{reason}"), hint=_HINTS.get(kind, hint))
        if isinstance(mapped, TrackingError):
            mapped.store = mask_uri(store)
            code = getattr(exc, "error_code", None) or _status(exc)
            mapped.code = "" if code is None else str(code)
        raise mapped from exc
