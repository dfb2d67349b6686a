"""`nbops serve` as a user runs it: a real server process on the trained project, real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from nbops.lifecycle.serve.routing import key_point
from tests.lifecycle import FEATURES
from tests.mlflow_server import server_env
from tests.unit.test_serve_parts import counts

ROW = {"f0": 0.5, "f1": -1.2, "f2": 0.3, "f3": 1.1, "f4": -0.4, "f5": 0.9}
MAX_BODY = 64 * 1024


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """ENV (this process's by default) without MLflow's variables."""
    return {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("MLFLOW_")}


class Server:
    """`nbops serve clf --port 0`: the system picks a free port, read back from the log line (a
    port found free here and handed over could be taken in between)."""

    def __init__(self, root: Path, log: Path, *args: str, name: str = "clf",
                 env: dict[str, str] | None = None):
        self.port = 0
        self.url = ""
        self.log = log
        self.name = name
        self.statuses_while_loading: list[tuple[int, int]] = []  # (/ready, /predict) before ready
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nbops", "serve", name, "--port", "0", *args],
                cwd=root, env={**clean_env(), **(env or {})}, stdout=out, stderr=subprocess.STDOUT)

    def wait_port(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            found = re.search(rf"serving {re.escape(self.name)} on http://127\.0\.0\.1:(\d+)", self.text())
            if found:
                self.port = int(found.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            assert self.proc.poll() is None, f"server exited {self.proc.returncode}: {self.text()}"
            time.sleep(0.05)
        raise AssertionError(f"no port in the log: {self.text()}")

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        self.wait_port(deadline)
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"server exited {self.proc.returncode}: {self.text()}"
                try:
                    ready = client.get("/ready").status_code
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if ready == 200:
                    return
                predict = client.post("/predict", json={"records": [ROW]}).status_code
                self.statuses_while_loading.append((ready, predict))
                time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout} s: {self.text()}")

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running(root: Path, log: Path, *args: str):
    server = Server(root, log, *args)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def canary(trained_project, tmp_path_factory):
    """clf@champion (version 1) with 20% of the traffic to clf@challenger (version 2)."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with running(trained_project, log, "--canary", "challenger=20", "--max-body", str(MAX_BODY)) as server:
        yield server


@pytest.fixture
def client(canary):
    with httpx.Client(base_url=canary.url, timeout=30) as c:
        yield c


# -- a real server (the pure pieces are in tests/unit/test_serve_parts.py) -----------------------
def test_ready_is_503_until_the_models_are_loaded(canary, client):
    seen = canary.statuses_while_loading
    # at least one whole observation while loading: /ready and /predict both 503 (one status
    # alone, the last, may be (503, 200) and would prove nothing about the time before)
    assert (503, 503) in seen, f"never seen loading, so nothing is shown: {seen}"
    *before, last = seen
    assert all(status == (503, 503) for status in before), seen
    # the models may finish loading between the last /ready and its /predict
    assert last in ((503, 503), (503, 200)), seen
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["aliases"] == {"challenger": {"version": "2", "percent": 20.0},
                                       "champion": {"version": "1", "percent": 80.0}}


def test_canary_share_and_metrics_match_the_requests(client):
    before = counts(client)
    answered = {"1": 0, "2": 0}
    for _ in range(2000):
        response = client.post("/predict", json={"records": [ROW]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == response.headers["x-model-version"]
        assert body["model"] == "clf" and body["alias"] == {"1": "champion", "2": "challenger"}[body["version"]]
        assert len(body["predictions"]) == 1
        answered[body["version"]] += 1
    share = answered["2"] / 2000
    assert 0.15 <= share <= 0.25, answered
    after = counts(client)
    for version in ("1", "2"):
        key = (version, "200")
        assert after.get(key, 0) - before.get(key, 0) == answered[version]


def test_the_same_request_key_always_gets_the_same_version(client):
    seen: dict[str, set[str]] = {}
    for i in range(100):
        for _ in range(3):
            response = client.post("/predict", json=[ROW], headers={"X-Request-Key": f"user-{i}"})
            assert response.status_code == 200
            seen.setdefault(f"user-{i}", set()).add(response.headers["x-model-version"])
    assert all(len(versions) == 1 for versions in seen.values())
    assert {v for versions in seen.values() for v in versions} == {"1", "2"}


def test_a_missing_column_is_a_400_naming_it_and_serving_goes_on(client):
    before = counts(client)
    bad = {k: v for k, v in ROW.items() if k != "f3"}
    for payload in ({"records": [bad]}, {"columns": {k: [v] for k, v in bad.items()}},
                    {"dataframe_split": {"columns": list(bad), "data": [list(bad.values())]}}):
        response = client.post("/predict", json=payload)
        assert response.status_code == 400
        assert "'f3'" in response.json()["error"]
    ok = client.post("/predict", json={"records": [ROW]})
    assert ok.status_code == 200
    after = counts(client)
    errors = sum(after.get((v, "400"), 0) - before.get((v, "400"), 0) for v in ("1", "2"))
    assert errors == 3


def test_a_value_of_the_wrong_type_is_a_400_naming_the_column(client):
    for column, payload in [
        ("f2", {"records": [{**ROW, "f2": "abc"}]}),
        ("f4", {"inputs": {**ROW, "f4": [1, 2]}}),
        ("f5", {"columns": list(ROW), "data": [[*list(ROW.values())[:5], {"x": 1}]]}),
        # JSON's true is not a double, though numpy would read it as 1.0 (every payload shape)
        ("f0", {"records": [{**ROW, "f0": True}]}),
        ("f1", {"dataframe_split": {"columns": list(ROW), "data": [[ROW["f0"], False, *list(ROW.values())[2:]]]}}),
        ("f3", {"inputs": {**{k: [v] for k, v in ROW.items()}, "f3": [True]}}),
        ("f0", {"instances": [[True, *list(ROW.values())[1:]]]}),
    ]:
        response = client.post("/predict", json=payload)
        assert response.status_code == 400, response.text
        assert f"column '{column}'" in response.json()["error"], (column, response.text)
    # the champion (k-nearest neighbours) refuses missing values; the forest would accept them
    champion = {"X-Request-Key": next(f"k{i}" for i in range(100) if key_point(f"k{i}") >= 20)}
    missing = client.post("/predict", json={"records": [{**ROW, "f1": None}]}, headers=champion)
    assert missing.status_code == 400 and "'f1'" in missing.json()["error"]
    assert client.post("/predict", json={"records": [ROW]}).status_code == 200


def test_bad_json_and_unknown_shapes_are_400(client):
    response = client.post("/predict", content=b'{"records": [', headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = client.post("/predict", json={"rows": [ROW]})
    assert response.status_code == 400 and "'rows'" in response.json()["error"]
    assert client.post("/predict", json={"records": [ROW]}).status_code == 200


def test_an_oversized_body_is_a_413(client):
    big = b'{"records": [' + b",".join([b'{"f0": 1.0}'] * (MAX_BODY // 10)) + b"]}"
    assert client.post("/predict", content=big).status_code == 413
    # no Content-Length (chunked): counted as it arrives
    chunks = (big[i:i + 4096] for i in range(0, len(big), 4096))
    assert client.post("/predict", content=chunks).status_code == 413
    assert client.post("/predict", json={"records": [ROW]}).status_code == 200


def test_every_payload_format_gives_the_same_predictions(client):
    rows = [ROW, {k: -v for k, v in ROW.items()}, {k: v * 3 for k, v in ROW.items()}]
    split = {"columns": FEATURES, "data": [[r[c] for c in FEATURES] for r in rows]}
    shuffled = FEATURES[::-1] + ["comment"]
    payloads = [
        {"records": rows}, rows, {"dataframe_records": rows}, {"instances": rows}, {"inputs": rows},
        {"columns": {c: [r[c] for r in rows] for c in FEATURES}}, split, {"dataframe_split": split},
        {"dataframe_split": {"columns": shuffled, "data": [[r[c] for c in FEATURES[::-1]] + ["x"] for r in rows]}},
        {"inputs": split["data"]},
    ]
    answers = []
    for payload in payloads:
        response = client.post("/predict", json=payload, headers={"X-Request-Key": "formats"})
        assert response.status_code == 200, (payload, response.text)
        answers.append(response.json()["predictions"])
    assert all(a == answers[0] for a in answers) and len(answers[0]) == 3
    mlflow_path = client.post("/invocations", json={"dataframe_split": split},
                              headers={"X-Request-Key": "formats"})
    assert mlflow_path.json()["predictions"] == answers[0]


def test_concurrent_requests_each_get_their_own_predictions(canary):
    rows = [{k: v * (i - 20) / 7 for k, v in ROW.items()} for i in range(40)]
    key = {"X-Request-Key": "batch"}
    with httpx.Client(base_url=canary.url, timeout=30) as c:
        alone = [c.post("/predict", json=[r], headers=key).json()["predictions"] for r in rows]
    assert len({str(a) for a in alone}) > 1  # not a constant model

    def send(i: int):
        with httpx.Client(base_url=canary.url, timeout=30) as c:
            return [c.post("/predict", json=[rows[j]], headers=key).json()["predictions"]
                    for j in range(i, len(rows), 8)], i

    with ThreadPoolExecutor(8) as pool:
        together = [None] * len(rows)
        for answers, i in pool.map(send, range(8)):
            for n, j in enumerate(range(i, len(rows), 8)):
                together[j] = answers[n]
    assert together == alone


def test_errors_before_the_port_is_bound_are_one_line(trained_project):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        done = subprocess.run([sys.executable, "-m", "nbops", "serve", "clf", "--port",
                               str(taken.getsockname()[1])], cwd=trained_project, env=clean_env(),
                              capture_output=True, text=True, timeout=120)
    finally:
        taken.close()
    assert done.returncode == 2 and "cannot listen on 127.0.0.1" in done.stderr
    done = subprocess.run([sys.executable, "-m", "nbops", "serve", "clf", "--port", "0",
                           "--canary", "shadow=10"], cwd=trained_project, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no alias 'shadow'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_reload_picks_up_an_alias_move(trained_project, tmp_path):
    from tests.lifecycle import nbops

    root = tmp_path / "proj"
    shutil.copytree(trained_project, root)
    with running(root, tmp_path / "server.log", "--reload-interval", "0.5", "--quiet") as server, \
            httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/predict", json=[ROW]).headers["x-model-version"] == "1"
        nbops(root, "models", "promote", "clf", "2", "--alias", "champion")
        deadline = time.monotonic() + 60
        versions = []
        while time.monotonic() < deadline:
            response = c.post("/predict", json=[ROW])
            assert response.status_code == 200  # no failed request while the version moves
            versions.append(response.headers["x-model-version"])
            if versions[-1] == "2":
                break
            time.sleep(0.05)
        assert versions[-1] == "2", server.text()
        assert "clf@champion: version 1 -> 2" in server.text()
        assert c.get("/ready").json()["aliases"]["champion"]["version"] == "2"


# -- connections that never finish a request ------------------------------------------------------
def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes SOCK (recv returns b''); fails past LIMIT."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s") from None
    return time.monotonic() - started


def test_half_open_connections_are_closed_and_others_served(trained_project, tmp_path):
    body = json.dumps({"records": [ROW]}).encode()
    partial_headers = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le"
    partial_body = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body)) + body[:10]
    with running(trained_project, tmp_path / "server.log", "--read-timeout", "1", "--quiet") as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        socks = {name: socket.create_connection(("127.0.0.1", server.port)) for name in
                 ("nothing sent", "partial headers", "partial body")}
        socks["partial headers"].sendall(partial_headers)
        socks["partial body"].sendall(partial_body)
        # while they hang, other clients are served
        assert client.post("/predict", json={"records": [ROW]}).status_code == 200
        with ThreadPoolExecutor(3) as pool:
            waited = dict(zip(socks, pool.map(lambda s: _closed_after(s, 10), socks.values()), strict=True))
        for sock in socks.values():
            sock.close()
        assert all(0.5 < seconds < 5 for seconds in waited.values()), waited
        # a body that arrives in pieces, whole within the deadline, is answered
        with socket.create_connection(("127.0.0.1", server.port)) as slow:
            slow.sendall(partial_body)
            time.sleep(0.3)
            slow.sendall(body[10:])
            slow.settimeout(10)
            assert slow.recv(4096).startswith(b"HTTP/1.1 200")
        assert client.get("/ready").status_code == 200
        metrics = client.get("/metrics").text
        assert 'status="408"' in metrics  # the cut-off body is counted
    assert "Traceback" not in server.text()


# -- a tracking store that goes away -----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, db: Path, port: int, log: Path):
        self.args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                     "--workers", "1", "--backend-store-uri", f"sqlite:///{db}"]
        self.uri, self.log, self.proc = f"http://127.0.0.1:{port}", log, None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         env={**clean_env(server_env()), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                         start_new_session=True)
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError("mlflow server did not start in 150 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def _wait_for(server: Server, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in server.text():
        assert time.monotonic() < deadline, f"no {text!r} in {seconds} s: {server.text()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.timeout(600)
def test_a_store_that_dies_is_said_once_and_once_when_back(trained_project, tmp_path):
    shutil.copy(trained_project / "mlflow.db", tmp_path / "mlflow.db")  # artifacts stay where they are
    store = MlflowServer(tmp_path / "mlflow.db", _free_port(), tmp_path / "mlflow.log")
    store.start()
    # MLflow's retries off: each check fails at once, so many checks fail while the store is away
    env = {"MLFLOW_TRACKING_URI": store.uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    server = Server(tmp_path, tmp_path / "server.log", "--reload-interval", "0.2", "--quiet", env=env)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            store.stop()
            _wait_for(server, "cannot check the aliases", 60)
            time.sleep(3)  # 15 more checks, all failing
            assert client.post("/predict", json=[ROW]).status_code == 200
            store.start()
            _wait_for(server, "alias checks work again", 60)
            time.sleep(1)
            assert client.post("/predict", json=[ROW]).status_code == 200
    finally:
        server.stop()
        store.stop()
    text = server.text()
    assert text.count("cannot check the aliases") == 1, text
    assert text.count("alias checks work again") == 1, text
    assert "Traceback" not in text
    down = next(line for line in text.splitlines() if "cannot check the aliases" in line)
    assert "still serving clf: champion=version 1" in down and "retrying every 0.2 s" in down
    # everything said after ready fits on a few lines, however many checks failed
    after_ready = text.split("ready in", 1)[1].splitlines()
    assert len([line for line in after_ready if line.strip()]) <= 8, text
