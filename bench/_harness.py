"""Shared by the benchmarks: alternate baseline and nbops runs, report medians and ratios.

See ../shared/BENCHMARKS.md: warm up once, then at least 5 alternating pairs; quote medians and
min/max; print one `target NAME: ratio R (goal <= G) PASS|FAIL` line per target.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(os.environ.get("NBOPS_BENCH_BIN", Path(__file__).resolve().parents[1] / ".venv" / "bin"))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*cmd, cwd=None, check_codes=(0, 1)) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if done.returncode not in check_codes:
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {done.stderr[-500:]}")
    return done


def git(root: Path, *args: str) -> str:
    """git in a scratch repository, with a fixed identity for its commits."""
    done = subprocess.run(["git", "-c", "user.email=bench@nbops", "-c", "user.name=bench", *args],
                          cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit_all(root: Path, message: str) -> str:
    if not (root / ".git").exists():
        git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def alternate(a: Callable[[], object], b: Callable[[], object], pairs: int = 5) -> tuple[list, list]:
    a(), b()  # warm-up
    ta, tb = [], []
    for _ in range(pairs):
        ta.append(timed(a))
        tb.append(timed(b))
    return ta, tb


def row(name: str, times: list[float]) -> str:
    return (f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")


def report(title: str, baseline: tuple[str, list[float]], ours: tuple[str, list[float]],
           target: str, goal: float, scale: float = 1.0) -> dict:
    """Print the table and the verdict; `scale` multiplies the baseline (a measured sample)."""
    base_med = statistics.median(baseline[1]) * scale
    ours_med = statistics.median(ours[1])
    ratio = ours_med / base_med
    print(f"\n### {title}\n")
    print("| command | median s | min s | max s |\n|---|---|---|---|")
    print(row(baseline[0], baseline[1]))
    if scale != 1.0:
        print(f"| {baseline[0]} x{scale:g} (extrapolated) | {base_med:.3f} | | |")
    print(row(ours[0], ours[1]))
    verdict = "PASS" if ratio <= goal else "FAIL"
    print(f"\ntarget {target}: ratio {ratio:.3f} (goal <= {goal:g}) {verdict}")
    return {"target": target, "ratio": round(ratio, 4), "goal": goal, "verdict": verdict,
            "baseline_s": round(base_med, 3), "nbops_s": round(ours_med, 3)}


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def save(name: str, results: list[dict], out: Path | None = None) -> None:
    out = out or Path(os.environ.get("NBOPS_BENCH_OUT", Path(__file__).parent / "out"))
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
