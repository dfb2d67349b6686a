"""What the app serves: options, the routing table (swapped whole), the loader thread."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import NbopsError
from nbops.lifecycle.serve.metrics import Metrics
from nbops.lifecycle.serve.routing import bands, key_point
from nbops.lifecycle.serve.served import Served

log = logging.getLogger("nbops.serve")


@dataclass(frozen=True)
class ServeOptions:
    name: str
    host: str = "127.0.0.1"
    port: int = 5050  # 0: a free port the system picks (the log line names it)
    canary: dict[str, float] = field(default_factory=dict)  # alias -> percent of requests
    reload_interval: float | None = None  # seconds between alias checks; None: never
    max_body: int = 10 * 1024 * 1024  # bytes; larger bodies get 413
    log_requests: bool = True
    read_timeout: float = 30.0  # seconds a request may take to arrive whole (see deadline.py)


class Service:
    """What the app serves: the routing table (swapped whole), metrics, the loader thread."""

    def __init__(self, settings: Settings, options: ServeOptions):
        self.settings = settings
        self.options = options
        self.bands = bands(options.canary)
        self.aliases = tuple(alias for alias, _ in self.bands)
        self.table: tuple[tuple[float, Served], ...] = ()  # empty until loaded: /ready is 503
        self.metrics = Metrics(options.name)
        # every MLflow call happens on this one thread (its sqlite store is not shared across threads)
        self.mlflow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbops-registry")
        self._registry = None
        self._models: dict[str, Any] = {}  # version -> LoadedModel, shared by aliases
        self.failure: Exception | None = None  # why loading failed, raised by serve()
        self.on_failure: Callable[[], None] = lambda: None
        self._gone: set[str] = set()  # aliases found missing (said once)

    # these run on the registry thread ---------------------------------------------------------
    def _reg(self):
        if self._registry is None:
            from nbops.lifecycle.registry import Registry

            # no `import mlflow` here (~2.3 s before the first answer): the registry reads without
            # it, and models.load points MLflow's global URIs at the store when it needs MLflow
            self._registry = Registry(self.settings)
        return self._registry

    def resolve(self) -> dict[str, Any]:
        """alias -> VersionInfo; RegistryError for a missing model or alias."""
        registry = self._reg()
        return {alias: registry.resolve(f"{self.options.name}@{alias}") for alias in self.aliases}

    def _load(self, versions: dict[str, Any]) -> dict[str, Served]:
        from nbops.lifecycle import models as models

        out = {}
        for alias, info in versions.items():
            if info.version not in self._models:
                self._models[info.version] = models.load(info)
            out[alias] = Served.of(self._models[info.version], alias)
        return out

    def _moved(self, current: dict[str, str]) -> dict[str, Served]:
        info = self._reg().model(self.options.name)
        moved = {}
        for alias, version in current.items():
            now = info.aliases.get(alias)
            if now is None:
                if alias not in self._gone:  # once, not on every check
                    log.warning("%s@%s no longer exists; still serving version %s",
                                self.options.name, alias, version)
                self._gone.add(alias)
                continue
            if alias in self._gone:
                self._gone.discard(alias)
                log.info("%s@%s exists again (version %s)", self.options.name, alias, now)
            if now != version:
                moved[alias] = self._reg().get(self.options.name, now)
        return self._load(moved) if moved else {}

    # these run on the event loop --------------------------------------------------------------
    def install(self, served: dict[str, Served]) -> None:
        """Swap in a new routing table (one assignment: no request sees half of it)."""
        old = {s.alias: s for _, s in self.table}
        new = {**old, **served}
        self.table = tuple((upper, new[alias]) for alias, upper in self.bands)
        for alias, s in served.items():
            if alias in old:
                self.metrics.loaded.remove(self.options.name, old[alias].version, alias)
            self.metrics.loaded.labels(self.options.name, s.version, alias).set(1)
        # versions no alias routes to any more are dropped (requests under way keep theirs);
        # the registry thread is idle here: load and watch install what it returned
        routed = {s.version for _, s in self.table}
        self._models = {v: m for v, m in self._models.items() if v in routed}

    def pick(self, key: str | None) -> Served | None:
        table = self.table
        if not table:
            return None
        point = key_point(key) if key else random.random() * 100.0
        for upper, served in table:
            if point < upper:
                return served
        return table[-1][1]

    async def load(self, versions: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            served = await loop.run_in_executor(self.mlflow, self._load, versions)
        except Exception as exc:  # noqa: BLE001 - not mapped: handed over, serve() raises it (exit 2, or 3 for a bug)
            self.failure = exc
            log.error("cannot load %s: %s", self.options.name, _one_line(exc))
            self.on_failure()
            return
        self.install(served)
        log.info("ready in %.1f s: %s", time.perf_counter() - started, self.describe())

    async def watch(self, interval: float) -> None:
        """Check the aliases every INTERVAL seconds. A store that stops answering is said once
        (and once when it answers again), not on every check."""
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            await asyncio.sleep(interval)
            if not self.table:
                continue
            current = {s.alias: s.version for _, s in self.table}
            try:
                moved = await loop.run_in_executor(self.mlflow, self._moved, current)
            except Exception as exc:  # noqa: BLE001 - not mapped: a service's loop, logged; a registry hiccup must not stop serving
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("cannot check the aliases: %s; still serving %s; retrying every "
                                "%g s (said again when it works)", _one_line(exc), self.describe(),
                                interval)
                continue
            if failing_since is not None:
                log.info("alias checks work again after %.0f s; serving %s",
                         time.monotonic() - failing_since, self.describe())
                failing_since = None
            if moved:
                for alias, s in moved.items():
                    log.info("%s@%s: version %s -> %s (reloaded)", self.options.name, alias,
                             current[alias], s.version)
                    self.metrics.reloads.labels(self.options.name, alias).inc()
                self.install(moved)

    def describe(self) -> str:
        parts, lower = [], 0.0
        for upper, s in self.table:
            parts.append(f"{s.alias}=version {s.version} ({upper - lower:g}%)")
            lower = upper
        return f"{self.options.name}: " + ", ".join(parts)

    def readiness(self) -> dict:
        lower, models = 0.0, {}
        for upper, s in self.table:
            models[s.alias] = {"version": s.version, "percent": round(upper - lower, 4)}
            lower = upper
        return {"ready": bool(self.table), "model": self.options.name, "aliases": models}


def _one_line(exc: Exception) -> str:
    """EXC in one line: an NbopsError's own line, else its type and first line."""
    from nbops.core.errors import first_line

    if isinstance(exc, NbopsError):
        return exc.one_line()
    return f"{type(exc).__name__}: {first_line(exc)}"
