"""Batch predictions: `nbops predict clf/1` over a 200,000-row CSV against
`mlflow models predict -m models:/clf/1 --env-manager local` on the same model and file
(goal <= 0.4). ../shared/BENCHMARKS.md, issue 15.

The model is the classification template's scaler + k-nearest-neighbours pipeline (the project
bench_serve.py builds, through the real CLI); the input is generated here (seeded, 6 float
features). Both read the CSV and write every prediction to a file. Whole processes are timed, as
a user runs them: start-up, finding and loading the model, scoring, writing.

Usage: python bench/bench_predict.py [--rows 200000] [--pairs 5] [--project DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.lifecycle builds the project through the real CLI
from _harness import BIN, alternate, report, save  # noqa: E402

COLUMNS = [f"f{i}" for i in range(6)]


def write_input(path: Path, rows: int) -> None:
    rng = random.Random(15)
    with path.open("w") as out:
        out.write(",".join(COLUMNS) + "\n")
        for _ in range(rows):
            out.write(",".join(f"{rng.gauss(0, 1.5):.6f}" for _ in COLUMNS) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--project", type=Path, help="a project with clf version 1 (only read)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = args.project or Path(tmp) / "proj"
        if not (root / "mlflow.db").exists():
            from tests.lifecycle import build_trained_project

            started = time.perf_counter()
            build_trained_project(root, kinds=("knn",))
            print(f"built the project in {time.perf_counter() - started:.0f} s")
        data = Path(tmp) / "input.csv"
        write_input(data, args.rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_"))}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"

        def call(*cmd) -> None:
            done = subprocess.run([str(c) for c in cmd], cwd=root, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {done.stderr[-1500:]}")

        def baseline():
            call(BIN / "mlflow", "models", "predict", "-m", "models:/clf/1", "-i", data, "-t", "csv",
                 "-o", Path(tmp) / "mlflow-out.json", "--env-manager", "local")

        def ours():
            call(BIN / "nbops", "predict", "clf/1", "--input", data, "--output", Path(tmp) / "nbops-out.csv", "-q")

        ta, tb = alternate(baseline, ours, args.pairs)
        results = [report(f"predict {args.rows:,} rows (CSV in, predictions out)",
                          ("mlflow models predict --env-manager local", ta), ("nbops predict clf/1", tb),
                          "predict-200k", 0.4)]
    save("predict", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
