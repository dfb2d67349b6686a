"""`nbops models list NAME` against a plain `MlflowClient` script doing the same search (the
registered model, its versions, each version's run), on the embedded sqlite store and on a local
`mlflow server`: goal <= 0.4 each. ../shared/BENCHMARKS.md, issue 15.

The store is generated here (seeded): one registered model with --versions versions, each from a
run with a few metrics and params, two aliases. Both sides print every version with its metrics.
For context (no goal), `nbops models promote` moving an alias and back is timed too.

Usage: python bench/bench_models.py [--versions 8] [--pairs 5] [--no-server]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, save, timed  # noqa: E402

CLIENT_SCRIPT = """
import sys
from mlflow.tracking import MlflowClient
uri, name = sys.argv[1], sys.argv[2]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
model = client.get_registered_model(name)
for mv in client.search_model_versions(f"name = '{name}'"):
    run = client.get_run(mv.run_id)
    print(mv.version, model.aliases, sorted(run.data.metrics.items()))
"""

POPULATE = """
import random, sys
from mlflow.tracking import MlflowClient
uri, versions = sys.argv[1], int(sys.argv[2])
rng = random.Random(15)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
exp = client.create_experiment("notebooks/clf")
client.create_registered_model("clf", tags={"nbops.compare": "accuracy", "nbops.higher_is_better": "true",
                                            "nbops.gates": '["accuracy >= 0.5"]'})
for i in range(versions):
    run = client.create_run(exp, tags={"nbops.notebook": "notebooks/clf.ipynb", "nbops.git_sha": "%040x" % i})
    rid = run.info.run_id
    for key in ("accuracy", "f1", "precision", "recall"):
        client.log_metric(rid, key, rng.uniform(0.6, 0.99))
    client.log_param(rid, "model", rng.choice(["knn", "random_forest", "logreg"]))
    client.set_terminated(rid)
    client.create_model_version("clf", f"runs:/{rid}/model", run_id=rid, tags={"nbops.gates": "passed"})
client.set_registered_model_alias("clf", "champion", "1")
client.set_registered_model_alias("clf", "challenger", "2")
"""


def _env(uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
    env["MLFLOW_TRACKING_URI"] = uri
    return env


def _call(cmd: list, cwd: Path, uri: str) -> None:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(uri), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {done.returncode}: {done.stderr[-800:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                             "--artifacts-destination", str(tmp / "server-artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "server.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError("mlflow server did not start in 180 s") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def measure(store: str, uri: str, root: Path, pairs: int) -> dict:
    def baseline():
        _call([BIN / "python", "-c", CLIENT_SCRIPT, uri, "clf"], root, uri)

    def ours():
        _call([BIN / "nbops", "models", "list", "clf"], root, uri)

    ta, tb = alternate(baseline, ours, pairs)
    return report(f"models list on {store}", ("MlflowClient script, same search", ta),
                  ("nbops models list clf", tb), f"models-list-{store.split()[0]}", 0.4)


def promote_context(uri: str, root: Path) -> None:
    times = []
    for version in ("2", "1"):  # champion is 1: there and back
        times.append(timed(lambda v=version: _call([BIN / "nbops", "models", "promote", "clf", v, "--alias",
                                                    "champion", "--by", "bench"], root, uri)))
    print(f"\nfor context: nbops models promote (embedded store): median {statistics.median(times):.2f} s "
          f"over {len(times)} moves")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--no-server", action="store_true", help="only the embedded store")
    args = ap.parse_args(argv)
    # SIGTERM (the smoke test's timeout) unwinds through the finally that stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        uri = f"sqlite:///{root / 'mlflow.db'}"
        _call([BIN / "python", "-c", POPULATE, uri, args.versions], root, uri)
        results.append(measure("embedded sqlite store", uri, root, args.pairs))
        promote_context(uri, root)
        if not args.no_server:
            server, server_uri = start_server(Path(tmp))
            try:
                _call([BIN / "python", "-c", POPULATE, server_uri, args.versions], root, server_uri)
                results.append(measure("server (local mlflow server)", server_uri, root, args.pairs))
            finally:
                stop(server)
    save("models", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
