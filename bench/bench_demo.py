"""A first `make demo`: on a fresh clone (packages cached: pip reads the local wheel mirrors), the
whole `make demo` (a virtual environment with what the demo needs, then the example notebooks
run into MLflow) against `make install` as it was before the demo got its own, smaller install
(goal <= 0.5). ../shared/BENCHMARKS.md, issue 15.

Each side gets its own fresh `git clone` of this repository: `make demo` at HEAD, `make install`
at the commit before the Makefile's DEMO_STAMP (the install of the dev and test extras too).
Besides the wall time, the longest silence of each (seconds without a line of output) is
printed: the install should show progress.

Usage: python bench/bench_demo.py [--pairs 5] [--baseline-ref REF]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import alternate, report, save  # noqa: E402

REPO = HERE.parent


def baseline_ref() -> str:
    """The commit before the one that gave `make demo` its own install."""
    done = subprocess.run(["git", "log", "--format=%H", "-S", "DEMO_STAMP", "--", "Makefile"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    first = done.stdout.split()[-1] if done.stdout.split() else "HEAD"
    return f"{first}^"


def make(clone: Path, target: str, silences: list[float]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBOPS_", "VIRTUAL_ENV"))}
    proc = subprocess.Popen(["make", target], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    last, longest, tail = time.perf_counter(), 0.0, []
    for line in proc.stdout:
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        tail = (tail + [line])[-30:]
    longest = max(longest, time.perf_counter() - last)
    if proc.wait() != 0:
        raise RuntimeError(f"make {target} exited {proc.returncode}:\n{''.join(tail)}")
    silences.append(longest)


def fresh_clone(parent: Path, ref: str) -> Path:
    clone = Path(tempfile.mkdtemp(prefix="clone-", dir=parent))
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=clone, check=True)
    return clone


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--baseline-ref", help="the commit whose `make install` is the baseline")
    args = ap.parse_args(argv)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    base_ref = args.baseline_ref or baseline_ref()
    quiet_base: list[float] = []
    quiet_ours: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        def run_in_clone(ref: str, target: str, silences: list[float]) -> None:
            clone = fresh_clone(Path(tmp), ref)
            try:
                make(clone, target, silences)
            finally:
                shutil.rmtree(clone, ignore_errors=True)

        ta, tb = alternate(lambda: run_in_clone(base_ref, "install", quiet_base),
                           lambda: run_in_clone(head, "demo", quiet_ours), args.pairs)
    results = [report("a first make demo on a fresh clone (packages cached)",
                      (f"make install ({base_ref[:12]})", ta), ("make demo (HEAD)", tb), "demo-first-run", 0.5)]
    print(f"longest silence: make install {max(quiet_base[1:] or quiet_base):.0f} s, "
          f"make demo {max(quiet_ours[1:] or quiet_ours):.0f} s (after the warm-up)")
    save("demo", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
