"""CLI start (`nbops --help` vs `papermill --help`, goal <= 0.15) and the kernel-side record
(`import nbops; nbops.record(...)` vs `import scrapbook; scrapbook.glue(...)` inside a fresh
kernel, goal <= 0.05). ../shared/BENCHMARKS.md.

Usage: python bench/bench_start.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, run, save  # noqa: E402

NBOPS_CODE = ("import time\nt = time.perf_counter()\nimport nbops\nnbops.record('x', 1.5)\n"
              "print(time.perf_counter() - t)")
SCRAPBOOK_CODE = ("import time\nt = time.perf_counter()\nimport scrapbook\nscrapbook.glue('x', 1.5)\n"
                  "print(time.perf_counter() - t)")


def in_fresh_kernel(code: str) -> float:
    """Seconds the code reports for itself, in a kernel started for it alone."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        out = []
        kc.execute_interactive(code, timeout=120, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        return float("".join(out).strip().splitlines()[-1])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    results = []
    tb, to = alternate(lambda: run(BIN / "papermill", "--help"), lambda: run(BIN / "nbops", "--help"), args.pairs)
    results.append(report("CLI start", ("papermill --help", tb), ("nbops --help", to), "cli-start", 0.15))
    # each sample is the in-kernel time of the import and one record, in its own fresh kernel
    base_times, ours_times = [], []
    in_fresh_kernel(SCRAPBOOK_CODE), in_fresh_kernel(NBOPS_CODE)  # warm-up (disk caches)
    for _ in range(args.pairs):
        base_times.append(in_fresh_kernel(SCRAPBOOK_CODE))
        ours_times.append(in_fresh_kernel(NBOPS_CODE))
    results.append(report("kernel-side record (import + one record, in a fresh kernel)",
                          ("import scrapbook; scrapbook.glue", base_times),
                          ("import nbops; nbops.record", ours_times), "kernel-record", 0.05))
    save("start", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
