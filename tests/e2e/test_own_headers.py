"""Issue 23, the data scientist's day: a CSV whose headers have spaces and brackets goes through
`nbops new --data`, `nbops run`, `nbops predict` (with `--proba`) and `nbops serve` (with
probabilities) under exactly those headers; `models list` without a name lists the model;
`promote` says what it does on stderr without importing mlflow. Real processes, a real sqlite
MLflow store, a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import git

BIN = Path(sys.executable).parent
HEADERS = ["mean radius", "worst area (cm)", "texture"]


def _env() -> dict[str, str]:
    """The user's shell: no tracking server, no CI (under CI=true a project that requires a server refuses)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JPY_", "NBOPS_"))
            and k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}


def nbops(*args: str, cwd: Path, timeout: float = 600, importtime: bool = False) -> subprocess.CompletedProcess:
    env = _env()
    return subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "nbops",
                           *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def spaced_csv(path: Path, rows: int = 240):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(23)
    frame = pd.DataFrame({h: rng.normal(size=rows) for h in HEADERS})
    frame["target"] = (frame["mean radius"] + frame["worst area (cm)"] > 0).astype(int)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def _post(port: int, body: dict, query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict{query}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _serve(root: Path, port: int) -> subprocess.Popen:
    env = _env()
    proc = subprocess.Popen([sys.executable, "-m", "nbops", "serve", "spaced", "--port", str(port), "--quiet"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("nbops serve was not ready in 240 s")


@pytest.mark.timeout(1200)
def test_headers_with_spaces_work_in_run_predict_and_serve(tmp_path):
    import pandas as pd

    root = tmp_path / "proj"
    done = nbops("init", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    frame = spaced_csv(root / "data" / "spaced.csv")
    done = nbops("new", "classification", "spaced", "--data", "data/spaced.csv", cwd=root)
    assert done.returncode == 0, done.stderr
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "spaced")
    done = nbops("run", "notebooks/spaced.ipynb", "--jobs", "1", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr

    # every registered model, without a name
    done = nbops("models", "list", "--format", "json", cwd=root)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["models"]
    assert row["name"] == "spaced" and row["latest_version"] == "1" and row["compare"] == "accuracy"
    assert row["best_version"] == "1" and row["best_value"] > 0.8

    # promote: a line on stderr at once, the result on stdout, no `import mlflow`
    done = nbops("models", "promote", "spaced", "1", "--alias", "champion", "--by", "ann", cwd=root,
                 importtime=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("spaced@champion -> version 1, by ann")
    said = [line for line in done.stderr.splitlines() if line.startswith("nbops: ")]
    assert said == ["nbops: moving spaced@champion to version 1 ..."]
    assert not [line for line in done.stderr.splitlines() if line.rstrip().endswith("| mlflow")]

    # predict: the training file's own headers, with probabilities
    new = frame.drop(columns="target")
    new.to_csv(root / "new.csv", index=False)
    done = nbops("predict", "spaced", "--input", "new.csv", "--output", "out.csv", "--proba", cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("nbops: predicting new.csv with spaced/1 (champion)")
    out = pd.read_csv(root / "out.csv")
    assert list(out.columns) == [*HEADERS, "prediction", "proba_0", "proba_1", "model_version"]
    assert ((out["proba_0"] + out["proba_1"]).round(9) == 1).all()
    assert ((out["proba_1"] > 0.5).astype(int) == out["prediction"]).all()
    assert (out["prediction"] == frame["target"]).mean() > 0.8

    # a header naming a column twice: one line naming the file and the column, exit 2
    (root / "dup.csv").write_text("mean radius,mean radius,texture\n1,2,3\n")
    done = nbops("predict", "spaced", "--input", "dup.csv", "--output", "dup_out.csv", cwd=root)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("nbops: error: input dup.csv: column 'mean radius' appears more than "
                                   "once in the header (hint: give each column its own name)")
    assert not (root / "dup_out.csv").exists()

    # serve: the same headers, probabilities on request
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = _serve(root, port)
    try:
        records = new.head(3).to_dict(orient="records")
        status, body = _post(port, {"records": records})
        assert status == 200, body
        assert body["predictions"] == out["prediction"].head(3).tolist() and "probabilities" not in body
        asks = (({"records": records, "probabilities": True}, ""), ({"records": records}, "?proba=true"))
        for payload, query in asks:
            status, body = _post(port, payload, query)
            assert status == 200, body
            assert body["classes"] == [0, 1]
            assert [[round(p, 9) for p in row] for row in body["probabilities"]] == \
                out[["proba_0", "proba_1"]].head(3).round(9).values.tolist()
        status, body = _post(port, {"records": records, "probabilities": "yes"})
        assert status == 400 and "'probabilities' must be true or false" in body["error"]
        status, body = _post(port, {"records": [{"mean_radius": 1.0}]})
        assert status == 400 and "missing column 'mean radius'" in body["error"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_run_refuses_a_declared_csv_with_a_duplicated_header_before_any_kernel(tmp_path):
    """A data file declared in metadata.nbops.data whose header names a column twice: one line
    naming the notebook, the file and the column, exit 2, in the time of a check (no kernel
    starts, no run is recorded)."""
    root = tmp_path / "proj"
    assert nbops("init", str(root), cwd=tmp_path).returncode == 0
    csv = root / "data" / "spaced.csv"
    spaced_csv(csv)
    assert nbops("new", "classification", "spaced", "--data", "data/spaced.csv", cwd=root).returncode == 0
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0].replace("texture", "mean radius"), *lines[1:]]) + "\n")
    started = time.monotonic()
    done = nbops("run", "notebooks/spaced.ipynb", cwd=root)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.strip()][:1]
    assert "notebooks/spaced.ipynb" in line and "data/spaced.csv" in line and "'mean radius'" in line
    assert "Traceback" not in done.stderr
    assert not (root / "mlflow.db").exists() and not (root / "runs").exists()
    print(f"refused in {took:.2f} s")
