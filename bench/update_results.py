"""Append this run's verdicts (bench/out/*.json, written by each benchmark) to bench/RESULTS.md
with the date, commit and machine. `make bench` runs it after the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import machine  # noqa: E402

HERE = Path(__file__).parent


def main() -> int:
    out = HERE / "out"
    files = sorted(out.glob("*.json")) if out.is_dir() else []
    if not files:
        print("no benchmark results in bench/out/: run the benchmarks first", file=sys.stderr)
        return 1
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    lines = [f"\n## {date.today().isoformat()}, commit {commit}, {machine()} (make bench)\n",
             "| target | nbops s | baseline s | ratio | goal | verdict |", "|---|---|---|---|---|---|"]
    for f in files:
        for r in json.loads(f.read_text())["results"]:
            lines.append(f"| {r['target']} | {r['nbops_s']} | {r['baseline_s']} | {r['ratio']} | "
                         f"<= {r['goal']} | {r['verdict']} |")
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as results:
        results.write("\n".join(lines) + "\n")
    print(f"appended {len(lines) - 3} verdicts to bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
