"""The fence around what `nbops serve` uses of uvicorn that uvicorn does not promise.

uvicorn's public API is `Config`, `Server` and `run`; nbops needs a read deadline per connection
(serve/deadline.py), which uvicorn has no setting for, so it subclasses uvicorn's HTTP protocol
classes. Private, and why:

- `uvicorn.protocols.http.auto.AutoHTTPProtocol` (httptools' `HttpToolsProtocol` where httptools
  is installed, else h11's `H11Protocol`): the class subclassed, handed to `Config(http=...)`.
- the protocol's hooks `connection_made`, `on_response_complete` and `connection_lost`
  (extended, each calling uvicorn's own) and its instance attributes `loop`, `transport` and
  `cycle`, the request being answered, whose `more_body` (body still arriving) and
  `response_complete` say whether a complete request is being answered (`answering`).
- `Server.should_exit` (documented only in uvicorn's source): set to stop the server when the
  models fail; `uvicorn.config.LOGGING_CONFIG`'s `default` handler and `uvicorn.access` logger.

`missing()` names whatever of this the installed uvicorn lacks; tests/unit/test_fence_uvicorn.py
asserts it names nothing, and tests/integration/test_fence_uvicorn.py runs the deadline on both
protocol implementations, so a release that moves them fails those tests (`make test`, the
version matrix) rather than a user's server.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

HOOKS = ("connection_made", "on_response_complete", "connection_lost")
IMPLEMENTATIONS = {"uvicorn.protocols.http.httptools_impl": "HttpToolsProtocol",
                   "uvicorn.protocols.http.h11_impl": "H11Protocol"}
# what each implementation's source sets: the attributes `answering`, loop() and transport() read
ASSIGNED = ("self.loop =", "self.transport =", "self.cycle =")
CYCLE_ASSIGNED = ("self.more_body =", "self.response_complete =")


def http_protocol() -> type:
    """uvicorn's HTTP protocol class for this machine (httptools', else h11's)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return AutoHTTPProtocol


def answering(protocol: Any) -> bool:
    """Whether PROTOCOL (a connection) is answering a request that arrived whole."""
    cycle = protocol.cycle
    return cycle is not None and not cycle.more_body and not cycle.response_complete


def loop(protocol: Any) -> Any:
    return protocol.loop


def transport(protocol: Any) -> Any:
    return protocol.transport


def missing() -> list[str]:
    """What `nbops serve` relies on that the installed uvicorn lacks: [] when all is there."""
    gone: list[str] = []
    try:
        http_protocol()
    except ImportError:
        gone.append("uvicorn.protocols.http.auto.AutoHTTPProtocol")
    for module_name, class_name in IMPLEMENTATIONS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # h11 or httptools not installed: that one is not used
            if exc.name in ("httptools", "h11"):
                continue
            gone.append(module_name)
            continue
        cls = getattr(module, class_name, None)
        if cls is None:
            gone.append(f"{module_name}.{class_name}")
            continue
        gone += [f"{class_name}.{hook}" for hook in HOOKS if not callable(getattr(cls, hook, None))]
        source = inspect.getsource(cls)
        gone += [f"{class_name}: {what}" for what in ASSIGNED if what not in source]
        cycle = getattr(module, "RequestResponseCycle", None)
        cycle_source = inspect.getsource(cycle) if cycle is not None else ""
        gone += [f"{module_name}.RequestResponseCycle: {what}" for what in CYCLE_ASSIGNED
                 if what not in cycle_source]
    try:
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        class Probe(http_protocol()):  # type: ignore[misc]
            pass

        config = uvicorn.Config(lambda scope, receive, send: None, http=Probe, log_config=None)
        config.load()
        if getattr(config, "http_protocol_class", None) is not Probe:
            gone.append("uvicorn.Config(http=<a protocol class>)")
        if getattr(uvicorn.Server(config), "should_exit", None) is not False:
            gone.append("uvicorn.Server.should_exit")
        if "default" not in LOGGING_CONFIG.get("handlers", {}) or \
                "uvicorn.access" not in LOGGING_CONFIG.get("loggers", {}):
            gone.append("uvicorn.config.LOGGING_CONFIG's default handler and uvicorn.access logger")
    except ImportError as exc:
        gone.append(f"uvicorn ({exc})")
    return gone
