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

A connection whose request has not arrived whole within `--read-timeout` seconds (of opening,
or of the previous response) is closed (`deadline.py`): a partial request cannot hold a
connection forever. Idle keep-alive connections close after uvicorn's 5 s.

With `--reload-interval` a task re-resolves the aliases; a moved version is loaded on the
registry thread (MLflow is only ever called from that one thread) and swapped in on the event
loop, so a request sees either the old table or the new one, never a mix.
"""

from __future__ import annotations

import socket

from nbops.core.config import Settings
from nbops.core.errors import ConfigError
from nbops.lifecycle.serve.app import create_app
from nbops.lifecycle.serve.service import ServeOptions, Service, log


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

    from nbops.lifecycle.serve.deadline import with_read_deadline
    from nbops.lifecycle.serve.uvicorn_private import http_protocol

    # the numpy fast path hands sklearn a matrix in the exact column order it was fitted on;
    # sklearn warns on every call that the matrix has no column names
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # *_created samples would double /metrics for no use here
    config = uvicorn.Config(create_app(service, versions), host=options.host, port=options.port,
                            workers=1, loop="auto", access_log=options.log_requests,
                            http=with_read_deadline(http_protocol(), options.read_timeout),
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
