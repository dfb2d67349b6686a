"""The read deadline (serve/deadline.py, through serve/uvicorn_private.py) on a real uvicorn
server in this process, on each of uvicorn's HTTP implementations (httptools' and h11's): an
incomplete request is cut off at the deadline, a complete one is answered however long the app
takes. Run on the oldest and newest uvicorn nbops supports (tests/matrix)."""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
import time

import pytest

from nbops.lifecycle.serve.deadline import with_read_deadline

DEADLINE = 0.5
IMPLEMENTATIONS = {"httptools": ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
                   "h11": ("uvicorn.protocols.http.h11_impl", "H11Protocol")}


async def slow_app(scope, receive, send):
    """Answers after 3 deadlines: a complete request must not be cut off meanwhile."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(DEADLINE * 3)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def server(request):
    import uvicorn

    module, name = IMPLEMENTATIONS[request.param]
    try:
        protocol = getattr(importlib.import_module(module), name)
    except ImportError:
        pytest.skip(f"{request.param} is not installed")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(slow_app, http=with_read_deadline(protocol, DEADLINE), log_config=None,
                            lifespan="off", timeout_keep_alive=60)  # uvicorn's own timer: out of the way
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield sock.getsockname()
    srv.should_exit = True
    thread.join(10)
    sock.close()


def _closed_within(conn: socket.socket, seconds: float) -> float:
    """Seconds until the server closes CONN (reads EOF or a reset)."""
    started = time.monotonic()
    conn.settimeout(seconds)
    try:
        while conn.recv(1024):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("sent", [b"", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Le",
                                  b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"],
                         ids=["nothing", "partial headers", "partial body"])
def test_an_incomplete_request_is_cut_off_at_the_deadline(server, sent):
    with socket.create_connection(server) as conn:
        conn.sendall(sent)
        took = _closed_within(conn, 20)
    assert DEADLINE * 0.8 <= took < DEADLINE + 3, took


def test_a_complete_request_is_answered_past_the_deadline_and_the_timer_rearms(server):
    with socket.create_connection(server) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(20)
        answer = b""
        while not answer.endswith(b"ok"):
            chunk = conn.recv(1024)
            assert chunk, f"closed before the answer: {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        took = _closed_within(conn, 20)  # idle after the response: cut at the deadline again
    assert took < DEADLINE + 3, took
