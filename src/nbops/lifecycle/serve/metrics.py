"""Prometheus counters and latency per served version, in a private registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbops.lifecycle.serve.served import Served

# request latency buckets, in seconds: predictions on small batches take about a millisecond
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Prometheus counters and a latency histogram per (version, alias), in a private registry
    (the process-wide one would also export Python's own collectors and clash between apps)."""

    def __init__(self, name: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.name = name
        labels = ("model", "version", "alias")
        self.requests = Counter("nbops_serve_requests", "Prediction requests by HTTP status",
                                (*labels, "status"), registry=self.registry)
        self.errors = Counter("nbops_serve_errors", "Failed prediction requests by reason",
                              (*labels, "reason"), registry=self.registry)
        self.latency = Histogram("nbops_serve_request_duration_seconds",
                                 "Time from request to response body, /predict", labels,
                                 buckets=BUCKETS, registry=self.registry)
        self.loaded = Gauge("nbops_serve_model_loaded", "1 for each version being served", labels,
                            registry=self.registry)
        self.reloads = Counter("nbops_serve_reloads", "Alias moves picked up without a restart",
                               ("model", "alias"), registry=self.registry)
        self._children: dict[tuple, Any] = {}  # labels() takes a lock and a dict lookup: cache

    def observe(self, served: Served | None, status: int, seconds: float, reason: str = "") -> None:
        version, alias = (served.version, served.alias) if served else ("", "")
        key = (version, alias, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (
                self.requests.labels(self.name, version, alias, str(status)),
                self.latency.labels(self.name, version, alias))
        child[0].inc()
        child[1].observe(seconds)
        if reason:
            self.errors.labels(self.name, version, alias, reason).inc()

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
