"""A read deadline for `nbops serve`'s connections: a request must arrive whole in time.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`); a client that sends
part of the request line or headers, or part of a body, holds its connection (and, for a body,
a handler) forever. `with_read_deadline(protocol, seconds)` subclasses uvicorn's HTTP protocol
(httptools' or h11's: both keep the request in `self.cycle`) with one timer per connection,
armed when the connection opens and again after each response: when it fires and no complete
request is being answered, the connection is closed. A request whose body is complete is never
cut off, however long the model takes. uvicorn's internals it reads are fenced in
serve/uvicorn_private.py (`answering`, `loop`, `transport`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nbops.lifecycle.serve.uvicorn_private import answering, loop, transport


def with_read_deadline(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """PROTOCOL (a uvicorn HTTP protocol class) with a read deadline of SECONDS."""
    base: Any = protocol

    class Deadline(base):
        _nbops_timer: asyncio.TimerHandle | None = None

        def _nbops_arm(self) -> None:
            if self._nbops_timer is not None:
                self._nbops_timer.cancel()
            self._nbops_timer = loop(self).call_later(seconds, self._nbops_expired)

        def _nbops_expired(self) -> None:
            self._nbops_timer = None
            if not answering(self) and not transport(self).is_closing():
                # request line, headers or body still incomplete (or nothing sent at all)
                transport(self).close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._nbops_arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not transport(self).is_closing():
                self._nbops_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._nbops_timer is not None:
                self._nbops_timer.cancel()
                self._nbops_timer = None
            super().connection_lost(exc)

    Deadline.__name__ = Deadline.__qualname__ = f"{protocol.__name__}WithReadDeadline"
    return Deadline
