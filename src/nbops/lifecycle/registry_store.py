"""Where the registry's reads and writes go: a fast path without `import mlflow` when it can
answer, MLflow's client otherwise.

Reads go through a fast reader (core/registry_read.py: the sqlite store read-only, a server's
REST API) unless a RUNNING run is orphaned (opening MLflow's client ends it) or the store needs
MLflow; writes, by MlflowClient's method names, through the server's REST API or into the embedded
store (core/sqlite_registry.py) where the reader has them, else through MLflow's client, its
exceptions mapped to nbops's errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nbops.core.errors import RegistryError, map_mlflow_errors
from nbops.core.registry_read import ClientReader, Reader, Unavailable, fast_reader
from nbops.run.orphans import HEARTBEAT_TAG, OWNER_TAG, STALE_S, open_client, owner_alive

Say = Callable[[str], None] | None  # told what a write is about to do, once its checks hold


def _orphaned(tags: dict[str, str]) -> bool:
    """Whether a RUNNING run's owner is gone (run/orphans.py's rule): opening the client ends it."""
    tag = tags.get(OWNER_TAG)
    if not tag:
        return False
    alive = owner_alive(tag)
    return alive is False or (alive is None and time.time() - float(tags.get(HEARTBEAT_TAG) or 0) > STALE_S)


class RegistryStore:
    """The registry's rows at URI, read and written by MlflowClient's method names."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client: Any = None
        self.reader: Reader | None = fast_reader(uri)
        if self.reader is not None:
            try:
                if any(_orphaned(tags) for _, tags in self.reader.running_runs()):
                    self.reader = None  # the client's opening ends it
            except Unavailable:
                self.reader = None
        if self.reader is None:
            self.reader = ClientReader(self.client, uri)

    @property
    def client(self) -> Any:
        """MLflow's client, opened on first use (checks the server, ends a dead nbops's runs)."""
        if self._client is None:
            self._client, _ = open_client(self.uri)
        return self._client

    def read(self, method: str, *args: str) -> Any:
        try:
            return getattr(self.reader, method)(*args)
        except Unavailable:  # the fast reader met something it does not know: MLflow answers
            self.reader = ClientReader(self.client, self.uri)
            return getattr(self.reader, method)(*args)

    def write(self, method: str, *args: str) -> None:
        """A write by MlflowClient's method name: on the fast path (no `import mlflow`) through the
        server's REST API or into the embedded store (core/sqlite_registry.py), else (or when
        that refuses) through MLflow's client."""
        fast = getattr(self.reader, method, None)
        if fast is not None:
            try:
                return fast(*args)
            except Unavailable:
                pass
        with map_mlflow_errors(what=f"cannot {method.replace('_', ' ')} of '{args[0]}'", store=self.uri,
                               error=RegistryError):
            getattr(self.client, method)(*args)
