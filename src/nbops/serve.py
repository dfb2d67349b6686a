"""`nbops serve`: HTTP predictions from NAME@champion, with a weighted canary split.

One uvicorn worker runs a small FastAPI app. Before the port is bound nbops resolves the aliases
(a missing model or alias is a RegistryError) and binds the socket itself (a port in use is a
ConfigError), so the CLI reports either in one line. The models are then loaded in the
background: `/health` answers at once, `/ready` is 503 until every alias is loaded.

The hot path (`POST /predict`, also `/invocations` for MLflow clients) reads the raw body, parses
it with orjson, picks a version (a stable hash of `X-Request-Key` into [0, 100), else a random
draw, against cumulative weight bands), checks the input against the signature and predicts on
the event loop (a hop to a thread costs more than a small prediction), one call for the requests
that arrive together (`Batcher`). Requests, errors and latency are counted per version in a
private Prometheus registry (`/metrics`).

With `--reload-interval` a task re-resolves the aliases; a moved version is loaded on the
registry thread (MLflow is only ever called from that one thread) and swapped in on the event
loop, so a request sees either the old table or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .errors import ConfigError, NbopsError
from .payload import PayloadError, decode

log = logging.getLogger("nbops.serve")

# requests of more rows than this are predicted on a worker thread, so that /health, /metrics and
# small requests are not stuck behind them; smaller ones run inline (the hop costs ~0.1 ms), in
# batches (`Batcher`) of at most this many rows
INLINE_ROWS = 1000
# request latency buckets, in seconds: predictions on small batches take about a millisecond
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServeOptions:
    name: str
    host: str = "127.0.0.1"
    port: int = 5050  # 0: a free port the system picks (the log line names it)
    canary: dict[str, float] = field(default_factory=dict)  # alias -> percent of requests
    reload_interval: float | None = None  # seconds between alias checks; None: never
    max_body: int = 10 * 1024 * 1024  # bytes; larger bodies get 413
    log_requests: bool = True


# -- routing ---------------------------------------------------------------------------------
def bands(canary: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Cumulative upper bounds in [0, 100): the canary aliases first, champion takes the rest."""
    out, upper = [], 0.0
    for alias, percent in canary.items():
        upper += percent
        out.append((alias, upper))
    out.append(("champion", 100.0))
    return tuple(out)


def key_point(key: str) -> float:
    """A point in [0, 100) that depends on KEY alone (not on the process, unlike hash())."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100.0


# -- one served version ----------------------------------------------------------------------
class Batcher:
    """One `predict` call for the requests that arrived together.

    While the event loop predicts for one request, others arrive; their handlers run in the next
    loop iteration, each adds its matrix here, and one `call_soon` flush predicts them stacked:
    a scikit-learn call costs about the same for 1 row as for 20 (validation, not arithmetic), so
    under concurrent load this multiplies throughput; a lone request waits one loop turn. Only
    matrices (the numpy fast path) are stacked, rows are independent in `predict`, and a batch
    that fails is redone request by request so that one bad payload fails alone.
    """

    def __init__(self, predict: Callable[[Any], Any]):
        self.predict = predict
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.rows = 0
        self.scheduled: asyncio.Handle | None = None

    def submit(self, matrix) -> asyncio.Future:
        """A future for MATRIX's predictions. MATRIX has at most INLINE_ROWS rows (larger ones are
        the caller's to predict on a thread), and so does every batch: when MATRIX would take the
        pending rows past INLINE_ROWS they are predicted first, and MATRIX starts a new batch."""
        loop = asyncio.get_running_loop()
        if self.pending and self.rows + len(matrix) > INLINE_ROWS:
            self.flush()
        future = loop.create_future()
        if not self.pending:
            self.scheduled = loop.call_soon(self.flush)
        self.pending.append((matrix, future))
        self.rows += len(matrix)
        return future

    def flush(self) -> None:
        if self.scheduled is not None:  # flushed early: the next batch schedules its own
            self.scheduled.cancel()
            self.scheduled = None
        batch, self.pending, self.rows = self.pending, [], 0
        batch = [(m, f) for m, f in batch if not f.done()]  # a client that hung up
        if not batch:
            return
        if len(batch) > 1:
            import numpy as np

            try:
                out = self.predict(np.concatenate([m for m, _ in batch]))
            except Exception:  # noqa: BLE001 - redone one by one below, each gets its own error
                out = None
            if out is not None and len(out) == sum(len(m) for m, _ in batch):
                start = 0
                for matrix, future in batch:
                    future.set_result(out[start:start + len(matrix)])
                    start += len(matrix)
                return
        for matrix, future in batch:
            try:
                future.set_result(self.predict(matrix))
            except Exception as exc:  # noqa: BLE001 - handed to that request's handler
                future.set_exception(exc)


@dataclass(frozen=True)
class Served:
    """A loaded version behind one alias, and what its requests need precomputed."""

    model: Any  # models.LoadedModel
    name: str
    alias: str
    version: str
    names: tuple[str, ...]  # the signature's columns, in order; empty without a signature
    fast: bool  # all-double columns into a sklearn model: a numpy matrix, no DataFrame
    headers: dict[str, str]
    batcher: Batcher | None  # for fast-path matrices

    @classmethod
    def of(cls, model, alias: str) -> Served:
        names = tuple(c.name for c in model.columns)
        fitted = getattr(model.predictor, "feature_names_in_", None)
        fast = (model.flavor == "sklearn" and bool(names)
                and all(c.kind == "double" and c.required for c in model.columns)
                and (fitted is None or tuple(str(n) for n in fitted) == names))
        version = model.version.version
        headers = {"X-Model-Name": model.version.name, "X-Model-Version": version,
                   "X-Model-Alias": alias}
        return cls(model, model.version.name, alias, version, names, fast, headers,
                   Batcher(model.predict) if fast else None)

    def prepare(self, shape: str, data: Any) -> tuple[Any, int]:
        """(model input, rows). Raises models.InputError or PayloadError naming the field."""
        if self.fast:
            matrix = self._matrix(shape, data)
            if matrix is not None:
                return matrix, matrix.shape[0]
        frame = self._frame(shape, data)
        return frame, len(frame)

    def _matrix(self, shape: str, data: Any):
        """A float64 matrix in the signature's column order, or None to take the DataFrame path
        (which says what is wrong, or accepts what numpy would not)."""
        import numpy as np

        names = self.names
        try:
            if shape == "records":
                rows = [[record[n] for n in names] for record in data]
            elif shape == "split":
                columns, rows = data
                if tuple(columns) != names:
                    index = [columns.index(n) for n in names]
                    matrix = np.array(rows, dtype=np.float64)
                    return matrix[:, index] if matrix.ndim == 2 and matrix.shape[1] == len(columns) else None
            elif shape == "columns":
                matrix = np.array([data[n] for n in names], dtype=np.float64).T
                return matrix if matrix.ndim == 2 else None
            else:
                rows = data
            matrix = np.array(rows, dtype=np.float64)
        except (KeyError, ValueError, TypeError, IndexError):
            return None
        return matrix if matrix.ndim == 2 and matrix.shape[1] == len(names) else None

    def _frame(self, shape: str, data: Any):
        import pandas as pd

        from .models import InputError

        names = self.names
        if shape == "records":
            for i, record in enumerate(data):
                for col in self.model.columns:
                    if col.required and col.name not in record:
                        raise InputError(f"missing column '{col.name}' in record {i}; the model "
                                         f"expects {', '.join(names)}")
            table = pd.DataFrame.from_records(data)
        elif shape == "split":
            columns, rows = data
            bad = next((i for i, r in enumerate(rows) if len(r) != len(columns)), None)
            if bad is not None:
                raise PayloadError(f"row {bad} of 'data' has {len(rows[bad])} values for "
                                   f"{len(columns)} columns")
            table = pd.DataFrame(rows, columns=columns)
        elif shape == "rows":
            if not names:
                raise PayloadError("rows without column names need a model with a column signature; "
                                   "send records or {\"columns\": [...], \"data\": [...]}")
            bad = next((i for i, r in enumerate(data) if len(r) != len(names)), None)
            if bad is not None:
                raise PayloadError(f"row {bad} has {len(data[bad])} values; the model expects "
                                   f"{len(names)} ({', '.join(names)})")
            table = pd.DataFrame(data, columns=list(names))
        else:
            table = pd.DataFrame(data)
        try:
            return self.model.frame(table)
        except InputError:
            raise
        except (TypeError, ValueError) as exc:  # pandas refusing a value the checks let through
            raise InputError(f"input does not fit the model's signature: {exc}") from None


# -- the service's state ---------------------------------------------------------------------
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

    # these run on the registry thread ---------------------------------------------------------
    def _reg(self):
        if self._registry is None:
            import mlflow

            from .registry import Registry

            uri = self.settings.resolved_tracking_uri
            # models:/ URIs are resolved against MLflow's global registry URI
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            self._registry = Registry(self.settings)
        return self._registry

    def resolve(self) -> dict[str, Any]:
        """alias -> VersionInfo; RegistryError for a missing model or alias."""
        registry = self._reg()
        return {alias: registry.resolve(f"{self.options.name}@{alias}") for alias in self.aliases}

    def _load(self, versions: dict[str, Any]) -> dict[str, Served]:
        from . import models

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
                log.warning("%s@%s no longer exists; still serving version %s",
                            self.options.name, alias, version)
            elif now != version:
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
        except Exception as exc:  # noqa: BLE001 - stop serving; serve() raises it (exit 2, or 3 for a bug)
            self.failure = exc
            text = exc.one_line() if isinstance(exc, NbopsError) else f"{type(exc).__name__}: {exc}"
            log.error("cannot load %s: %s", self.options.name, text)
            self.on_failure()
            return
        self.install(served)
        log.info("ready in %.1f s: %s", time.perf_counter() - started, self.describe())

    async def watch(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            if not self.table:
                continue
            current = {s.alias: s.version for _, s in self.table}
            try:
                moved = await loop.run_in_executor(self.mlflow, self._moved, current)
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not stop serving
                log.warning("alias check failed, still serving %s: %s", self.describe(), exc)
                continue
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


# -- the app -----------------------------------------------------------------------------------
def create_app(service: Service, versions: dict[str, Any]):
    """The FastAPI app. VERSIONS (alias -> VersionInfo, resolved before the port was bound) are
    loaded once the server runs."""
    import contextlib

    import numpy as np
    import orjson
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from .models import InputError

    max_body = service.options.max_body
    json_type = "application/json"

    def reply(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain),
                        status_code=status, media_type=json_type, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        tasks = [asyncio.create_task(service.load(versions))]
        if service.options.reload_interval:
            tasks.append(asyncio.create_task(service.watch(service.options.reload_interval)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            service.mlflow.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title=f"nbops serve {service.options.name}", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)

    def failed(served: Served | None, started: float, status: int, reason: str,
               message: str) -> Response:
        service.metrics.observe(served, status, time.perf_counter() - started, reason)
        body = {"error": message}
        if served is not None:
            body.update(model=served.name, version=served.version, alias=served.alias)
            return reply(status, body, served.headers)
        return reply(status, body)

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        served = service.pick(request.headers.get("x-request-key"))
        if served is None:
            return failed(None, started, 503, "not_ready", "the models are still loading")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            return failed(served, started, 413, "too_large",
                          f"the body has {declared} bytes; the limit is {max_body} (--max-body)")
        chunks, size = [], 0
        async for chunk in request.stream():  # counted as it arrives: chunked bodies too
            size += len(chunk)
            if size > max_body:
                return failed(served, started, 413, "too_large",
                              f"the body exceeds {max_body} bytes (--max-body)")
            chunks.append(chunk)
        try:
            shape, data = decode(orjson.loads(b"".join(chunks)))
            features, rows = served.prepare(shape, data)
        except orjson.JSONDecodeError as exc:
            return failed(served, started, 400, "bad_json", f"the body is not valid JSON: {exc}")
        except (PayloadError, InputError) as exc:
            return failed(served, started, 400, "bad_input", str(exc))
        except (ValueError, TypeError) as exc:  # a conversion the checks did not foresee
            return failed(served, started, 400, "bad_input", f"cannot read the input: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the service
            log.exception("reading a request for %s version %s failed", served.name, served.version)
            return failed(served, started, 500, "internal",
                          f"cannot read the input: {type(exc).__name__}: {exc}")
        try:
            if rows > INLINE_ROWS:
                loop = asyncio.get_running_loop()
                predictions = await loop.run_in_executor(None, served.model.predict, features)
            elif served.batcher is not None and isinstance(features, np.ndarray):
                predictions = await served.batcher.submit(features)
            else:
                predictions = served.model.predict(features)
        except (ValueError, TypeError) as exc:  # the model refused these values (e.g. NaN)
            return failed(served, started, 400, "bad_input", _rejected(exc, features, served.names))
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the service
            log.exception("prediction failed on %s version %s", served.name, served.version)
            return failed(served, started, 500, "model_error",
                          f"prediction failed: {type(exc).__name__}: {exc}")
        try:
            response = reply(200, {"model": served.name, "version": served.version,
                                   "alias": served.alias, "predictions": predictions}, served.headers)
        except Exception as exc:  # noqa: BLE001 - predictions orjson cannot write
            log.exception("writing predictions of %s version %s failed", served.name, served.version)
            return failed(served, started, 500, "model_error",
                          f"cannot write the predictions as JSON: {type(exc).__name__}: {exc}")
        service.metrics.observe(served, 200, time.perf_counter() - started)
        return response

    # plain Starlette routes: FastAPI's dependency solving and body models would only add
    # per-request work here, and the body is read raw anyway
    app.router.add_route("/predict", predict, methods=["POST"])
    app.router.add_route("/invocations", predict, methods=["POST"])  # MLflow's path

    async def health(request: Request) -> Response:
        return reply(200, {"status": "ok"})

    async def ready(request: Request) -> Response:
        state = service.readiness()
        return reply(200 if state["ready"] else 503, state)

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    app.router.add_route("/health", health, methods=["GET"])
    app.router.add_route("/ping", health, methods=["GET"])  # MLflow's path
    app.router.add_route("/ready", ready, methods=["GET"])
    app.router.add_route("/metrics", metrics, methods=["GET"])
    return app


def _rejected(exc: Exception, features: Any, names: tuple[str, ...]) -> str:
    """The model's complaint (its first line: sklearn's go on for a paragraph), naming the
    columns with missing values when there are any, since the model's message does not."""
    import numpy as np

    message = f"the model rejected the input: {(str(exc).strip().splitlines() or [''])[0]}"
    try:
        if isinstance(features, np.ndarray):
            empty = [n for n, bad in zip(names, np.isnan(features).any(axis=0), strict=True) if bad]
        else:
            empty = [str(n) for n in features.columns[features.isna().any().to_numpy()]]
    except (TypeError, ValueError, AttributeError):
        empty = []
    if empty:
        message += f" (missing values in column {', '.join(repr(n) for n in empty)})"
    return message


def _plain(obj: Any) -> Any:
    """orjson's fallback: numpy arrays it cannot take (strings, objects), scalars, pandas."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a DataFrame
        return obj.to_dict(orient="records")
    if hasattr(obj, "tolist"):  # ndarray, Series, numpy scalar
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# -- the command -------------------------------------------------------------------------------
def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a one-line error (and no other
    process can take the port between a check and uvicorn's bind)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}: {exc.strerror}", hint="--host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          hint="another process uses the port: choose another --port") from None
    return sock


def _log_config(access: bool) -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["loggers"]["nbops.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if not access:
        config["loggers"]["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
    return config


def serve(settings: Settings, options: ServeOptions) -> int:
    """Serve until interrupted; 0 after a clean shutdown. NbopsError before the port is bound,
    or when the models cannot be loaded."""
    import warnings

    if "champion" in options.canary:
        raise ConfigError("--canary takes the other aliases; champion gets the rest of the traffic")
    if sum(options.canary.values()) >= 100:
        raise ConfigError("--canary weights add up to 100% or more", hint="e.g. --canary challenger=10")
    sock = _bind(options.host, options.port)
    service = Service(settings, options)
    try:
        versions = service.mlflow.submit(service.resolve).result()
    except BaseException:
        sock.close()
        service.mlflow.shutdown(wait=False)
        raise

    import uvicorn

    # the numpy fast path hands sklearn a matrix in the exact column order it was fitted on;
    # sklearn warns on every call that the matrix has no column names
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # *_created samples would double /metrics for no use here
    config = uvicorn.Config(create_app(service, versions), host=options.host, port=options.port,
                            workers=1, loop="auto", http="auto", access_log=options.log_requests,
                            log_config=_log_config(options.log_requests), server_header=False)
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    service.on_failure = stop
    port = sock.getsockname()[1]  # the one the system picked for --port 0
    log.info("serving %s on http://%s:%d (loading %s)", options.name, options.host, port,
             ", ".join(f"{a}=version {v.version}" for a, v in versions.items()))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if service.failure is not None:
        raise service.failure
    return 0
