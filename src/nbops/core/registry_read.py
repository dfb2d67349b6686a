"""Reading MLflow's registry without `import mlflow` where that is safe.

`import mlflow` alone costs ~2.3 s, more than a whole `nbops models list`. So the registry's
reads go through a reader: `fast_reader(uri)` reads the embedded sqlite store read-only
(`core/sqlite_store.py`) or a tracking server through MLflow's documented REST API
(`core/rest_store.py`); `ClientReader` asks MLflow itself (any other store, and the fallback).
All three return the same plain records. A fast reader that meets anything it does not expect
(a store that fails `core/mlflow_db.py`'s check, a server error, an unusual authentication) raises
`Unavailable`, and the caller asks MLflow instead: the fast path never answers differently from MLflow
(tests/integration/test_fast_registry.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nbops.core.errors import NotFound, RegistryError, map_mlflow_errors
from nbops.core.mlflow_db import (
    Unavailable as Unavailable,  # every fast path's, imported from here too
)
from nbops.core.mlflow_db import client_only
from nbops.core.store import mask_uri


@dataclass(frozen=True)
class RawModel:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version


@dataclass(frozen=True)
class RawVersion:
    name: str
    version: str
    run_id: str
    source: str
    created: int  # ms since the epoch
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawRun:
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    artifact_uri: str = ""  # where its artifacts live, as MLflow says it


class Reader(Protocol):
    def model(self, name: str) -> RawModel | None: ...
    def model_names(self) -> list[str]: ...
    def versions(self, name: str) -> list[RawVersion]: ...
    def version(self, name: str, version: str) -> RawVersion | None: ...
    def run(self, run_id: str) -> RawRun | None: ...
    def running_runs(self) -> list[tuple[str, dict[str, str]]]: ...
    def artifact_location(self, model_id: str) -> str | None: ...


def fast_reader(uri: str) -> Reader | None:
    """A reader that does not import mlflow for URI, or None where only MLflow can read it. A
    server or database is checked first (core/store.py: check_reachable), before `import mlflow`
    (seconds; tens of seconds on a loaded machine) in either case: one line within seconds."""
    if not uri.startswith("sqlite:///"):
        from nbops.core.store import bounded_retries, check_reachable

        bounded_retries()
        check_reachable(uri)  # the same one-line error as MLflow's path (orphans.open_client)
    if client_only():
        return None
    if uri.startswith("sqlite:///"):
        from nbops.core.sqlite_registry import SqliteRegistry  # and the registry's writes

        return SqliteRegistry(uri[len("sqlite:///"):])
    if uri.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        if urlsplit(uri).username is not None:
            return None  # credentials in the URI: MLflow's requests session handles them
        from nbops.core.rest_store import RestReader

        return RestReader(uri)
    return None


class ClientReader:
    """The same records, read through an MlflowClient (MLflow's errors mapped by core/errors.py:
    a thing that is not there is None, any other refusal a RegistryError)."""

    def __init__(self, client: Any, uri: str):
        self.client, self.uri = client, uri

    def _ask(self, what: str, call: Callable[[], Any], missing_is_none: bool = True) -> Any:
        """CALL() with MLflow's errors mapped; None where MLflow says WHAT does not exist."""
        try:
            with map_mlflow_errors(what=f"cannot read {what} from {mask_uri(self.uri)}", store=self.uri,
                                   error=RegistryError):
                return call()
        except NotFound:
            if missing_is_none:
                return None
            raise

    def model(self, name: str) -> RawModel | None:
        rm = self._ask(f"model '{name}'", lambda: self.client.get_registered_model(name))
        if rm is None:
            return None
        return RawModel(rm.name, dict(rm.tags or {}), {a: str(v) for a, v in (rm.aliases or {}).items()})

    def model_names(self) -> list[str]:
        found = self._ask("the registered models", lambda: self.client.search_registered_models(max_results=1000),
                          missing_is_none=False)
        return [m.name for m in found]

    @staticmethod
    def _version(mv: Any) -> RawVersion:
        return RawVersion(mv.name, str(mv.version), mv.run_id or "", mv.source or "",
                          int(mv.creation_timestamp or 0), dict(mv.tags or {}))

    def versions(self, name: str) -> list[RawVersion]:
        def pages() -> list[RawVersion]:
            out: list[RawVersion] = []
            token = None
            while True:
                page = self.client.search_model_versions(f"name = '{name}'", max_results=10_000,
                                                         page_token=token)
                out.extend(self._version(mv) for mv in page)
                token = page.token
                if not token:
                    return out

        return self._ask(f"the versions of '{name}'", pages, missing_is_none=False)

    def version(self, name: str, version: str) -> RawVersion | None:
        mv = self._ask(f"{name} version {version}", lambda: self.client.get_model_version(name, str(version)))
        return None if mv is None else self._version(mv)

    def run(self, run_id: str) -> RawRun | None:
        run = self._ask(f"run {run_id}", lambda: self.client.get_run(run_id))
        if run is None:
            return None
        return RawRun(run_id, dict(run.data.metrics), dict(run.data.params), dict(run.data.tags),
                      run.info.artifact_uri or "")

    def artifact_location(self, model_id: str) -> str | None:
        model = self._ask(f"logged model {model_id}", lambda: self.client.get_logged_model(model_id))
        return None if model is None else model.artifact_location

    def running_runs(self) -> list[tuple[str, dict[str, str]]]:
        return []  # opening the client (run/orphans.open_client) has ended the orphans already
