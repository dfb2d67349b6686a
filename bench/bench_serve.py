"""Online serving: `nbops serve clf` vs `mlflow models serve -m models:/clf/1` on the same model
(a scaler + k-nearest-neighbours pipeline registered by the classification template), the same
payload (MLflow's `dataframe_split`, 1 row and 100 rows) and the same load. Goals: at least twice
the throughput (time per request ratio <= 0.5) at a lower p99 latency (ratio < 1).
../shared/BENCHMARKS.md.

Both servers run with their defaults as a user starts them (one uvicorn worker each, access log
on). The load generator is bounded: a fixed number of requests over a fixed number of keep-alive
connections on loopback, pre-encoded HTTP/1.1 requests, one asyncio client (uvloop when present),
per-request latency from writing the request to reading the whole response. Warm-up, then
alternating rounds (mlflow, nbops, mlflow, ...); medians over the rounds.

Usage: python bench/bench_serve.py [--requests 2000] [--rounds 5] [--concurrency 1 8] [--rows 1 100]
       python bench/bench_serve.py --quick     (a tiny size, for the smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.lifecycle builds the project through the real CLI
from _harness import BIN, machine, report, save  # noqa: E402

COLUMNS = [f"f{i}" for i in range(6)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def payload(rows: int) -> bytes:
    import json
    import random

    rng = random.Random(rows)
    data = [[round(rng.gauss(0, 1), 6) for _ in COLUMNS] for _ in range(rows)]
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()


def http_request(path: str, port: int, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# -- the load generator ------------------------------------------------------------------------
async def _connection(port: int, request: bytes, left: list[int], latencies: list[float],
                      failures: list[str], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await ready.wait()
    clock = time.perf_counter
    try:
        while left[0] > 0:
            left[0] -= 1
            start = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            body = await reader.readexactly(length)
            latencies.append(clock() - start)
            if head[9:12] != b"200":
                failures.append(f"{head[:12].decode()} {body[:200]!r}")
    finally:
        writer.close()


async def _load(port: int, request: bytes, total: int, concurrency: int):
    left, latencies, failures, ready = [total], [], [], asyncio.Event()
    tasks = [asyncio.create_task(_connection(port, request, left, latencies, failures, ready))
             for _ in range(concurrency)]
    await asyncio.sleep(0.05)  # connections open before the clock starts
    start = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, latencies, failures


def load(port: int, request: bytes, total: int, concurrency: int) -> dict:
    """Send TOTAL requests over CONCURRENCY connections; rps and latency percentiles."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    wall, latencies, failures = runner(_load(port, request, total, concurrency))
    if failures:
        raise RuntimeError(f"{len(failures)} request(s) failed, first: {failures[0]}")
    latencies.sort()
    return {"rps": total / wall, "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


# -- the servers -------------------------------------------------------------------------------
def wait_until(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s: {log.read_text()[-1500:]}")


SERVERS: list[subprocess.Popen] = []  # stopped on the way out, however the script ends


def start(cmd: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        # a process group of its own: mlflow's CLI runs uvicorn in a child, stop() ends both
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    SERVERS.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def stop_all() -> None:
    for proc in SERVERS:
        stop(proc)


def on_signal(signum, frame) -> None:
    """SIGTERM or SIGHUP (a test's timeout, a closed terminal): unwind, so that the servers stop;
    the servers are in groups of their own and would outlive the script."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    raise SystemExit(128 + signum)


def first_200(cmd: list[str], url: str, body: bytes, cwd: Path, env: dict, log: Path) -> float:
    """Seconds from starting the server to its first 200 answer to a prediction request."""
    started = time.perf_counter()
    proc = start(cmd, cwd, env, log)
    try:
        while time.perf_counter() - started < 180:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}: {log.read_text()[-1500:]}")
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no 200 from {url} in 180 s: {log.read_text()[-1500:]}")
    finally:
        stop(proc)


def startup(root: Path, env: dict, tmp: Path, pairs: int, warm_up: bool = True) -> dict:
    """Issue 15: time to the first 200, `mlflow models serve` vs `nbops serve`, alternating."""
    body = payload(1)

    def base() -> float:
        port = free_port()
        return first_200([str(BIN / "mlflow"), "models", "serve", "-m", "models:/clf/1", "--env-manager", "local",
                          "-h", "127.0.0.1", "-p", str(port), "-w", "1"], f"http://127.0.0.1:{port}/invocations",
                         body, root, env, tmp / "mlflow-start.log")

    def ours() -> float:
        port = free_port()
        return first_200([str(BIN / "nbops"), "serve", "clf", "--host", "127.0.0.1", "--port", str(port)],
                         f"http://127.0.0.1:{port}/predict", body, root, env, tmp / "nbops-start.log")

    if warm_up:  # disk caches (not in --quick: its one pair says the script works, not a time)
        base(), ours()
    tb, to = [], []
    for _ in range(pairs):  # the seconds each reports, without the time it takes to stop
        tb.append(base())
        to.append(ours())
    return report("time to the first 200 (start the server, POST one row until it answers)",
                  ("mlflow models serve", tb), ("nbops serve", to), "serve-first-200", 0.5)


def build_project(root: Path) -> None:
    from tests.lifecycle import build_trained_project

    build_trained_project(root, kinds=("knn",))  # version 1, champion


# -- the report --------------------------------------------------------------------------------
def verdicts(case: str, base: list[dict], ours: list[dict]) -> list[dict]:
    base_rps = statistics.median(r["rps"] for r in base)
    ours_rps = statistics.median(r["rps"] for r in ours)
    base_p99 = statistics.median(r["p99"] for r in base)
    ours_p99 = statistics.median(r["p99"] for r in ours)
    results = []
    # throughput as time per request, so that below 1.0 is better like every other target
    for target, b, o, goal, strict in ((f"serve-throughput-{case}", 1 / base_rps, 1 / ours_rps, 0.5, False),
                                        (f"serve-p99-{case}", base_p99, ours_p99, 1.0, True)):
        ratio = o / b
        ok = ratio < goal if strict else ratio <= goal
        verdict = "PASS" if ok else "FAIL"
        print(f"target {target}: ratio {ratio:.3f} (goal {'<' if strict else '<='} {goal:g}) {verdict}")
        results.append({"target": target, "ratio": round(ratio, 4), "goal": goal, "verdict": verdict,
                        "baseline_s": round(b, 6), "nbops_s": round(o, 6)})
    return results


def table(case: str, base: list[dict], ours: list[dict]) -> None:
    print(f"\n### {case}\n")
    print("| server | rps median | rps min | rps max | p50 ms | p99 ms median | p99 ms min | p99 ms max |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rounds in (("mlflow models serve", base), ("nbops serve", ours)):
        rps = [r["rps"] for r in rounds]
        p99 = [r["p99"] * 1000 for r in rounds]
        p50 = statistics.median(r["p50"] for r in rounds) * 1000
        print(f"| {name} | {statistics.median(rps):.0f} | {min(rps):.0f} | {max(rps):.0f} | {p50:.2f} | "
              f"{statistics.median(p99):.2f} | {min(p99):.2f} | {max(p99):.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="requests per round and server")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--startup-pairs", type=int, default=5, help="server starts timed, each side")
    ap.add_argument("--quick", action="store_true", help="a tiny size: 50 requests, 1 round")
    ap.add_argument("--project", type=Path,
                    help="a project with clf version 1 at champion, e.g. built by an earlier run; "
                         "only read (no alias moves, nothing written)")
    args = ap.parse_args(argv)
    atexit.register(stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    if args.quick:
        args.requests, args.rounds, args.concurrency, args.rows = 50, 1, [2], [1]
        args.startup_pairs = 1
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = args.project or Path(tmp) / "proj"
        if not (root / "mlflow.db").exists():
            started = time.perf_counter()
            build_project(root)
            print(f"built the project in {time.perf_counter() - started:.0f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"  # mlflow execs `uvicorn`
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        results = [startup(root, env, Path(tmp), args.startup_pairs, warm_up=not args.quick)]
        base_port, ours_port = free_port(), free_port()
        base = start([str(BIN / "mlflow"), "models", "serve", "-m", "models:/clf/1", "--env-manager",
                      "local", "-h", "127.0.0.1", "-p", str(base_port), "-w", "1"],
                     root, env, Path(tmp) / "mlflow.log")
        ours = start([str(BIN / "nbops"), "serve", "clf", "--host", "127.0.0.1", "--port", str(ours_port)],
                     root, env, Path(tmp) / "nbops.log")
        try:
            wait_until(f"http://127.0.0.1:{base_port}/ping", base, Path(tmp) / "mlflow.log")
            wait_until(f"http://127.0.0.1:{ours_port}/ready", ours, Path(tmp) / "nbops.log")
            for rows in args.rows:
                body = payload(rows)
                requests = (http_request("/invocations", base_port, body),
                            http_request("/predict", ours_port, body))
                for conc in args.concurrency:
                    load(base_port, requests[0], min(200, args.requests), conc)  # warm-up
                    load(ours_port, requests[1], min(200, args.requests), conc)
                    b, o = [], []
                    for _ in range(args.rounds):
                        b.append(load(base_port, requests[0], args.requests, conc))
                        o.append(load(ours_port, requests[1], args.requests, conc))
                    case = f"{rows}row{'s' if rows > 1 else ''}-c{conc}"
                    table(f"{case}: {rows} row(s) a request, {conc} connection(s), "
                          f"{args.requests} requests a round, {args.rounds} rounds", b, o)
                    results += verdicts(case, b, o)
        finally:
            stop(base)
            stop(ours)
    save("serve", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
