"""A notebook of many trivial cells: `nbops run` of a 5,000-cell notebook against papermill's own
execution of it in the same run (goal <= 3.0). ../shared/BENCHMARKS.md.

papermill saves the whole notebook at the start and the end of every cell, so its CLI (and its
API with an output path) costs O(cells^2): measured here, 500 cells 134 s, 1,000 cells 514 s, so
5,000 cells would take hours. The baseline is therefore papermill's Python API executing the
notebook without an output path (no per-cell saves: papermill's own time for the cells) and
writing the result once at the end with nbformat: the fastest papermill gets. For context the
script also times the papermill CLI, as users run it, on a small sample (`--cli-cells`), and
nbops's cost per cell at a tenth of the size (it must not grow with the notebook).

Usage: python bench/bench_cells.py [--cells 5000] [--pairs 5] [--cli-cells 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, run, save, timed  # noqa: E402

PM_API = """
import sys, nbformat, papermill as pm
nb = pm.execute_notebook(sys.argv[1], None, progress_bar=False)
nbformat.write(nb, sys.argv[2])
"""


def write_cells(path: Path, count: int) -> str:
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [], "execution_count": None,
              "source": f"x = {i}"} for i in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))
    return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--cli-cells", type=int, default=200, help="papermill CLI sample (0: skip)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        big = write_cells(root / "notebooks" / f"cells{args.cells}.ipynb", args.cells)
        tenth = max(args.cells // 10, 1)
        small = write_cells(root / "notebooks" / f"cells{tenth}.ipynb", tenth)
        out = root / "out"
        out.mkdir()

        def papermill_api():
            run(BIN / "python", "-c", PM_API, big, out / "pm.ipynb", check_codes=(0,))

        def ours(path=big):
            run(BIN / "nbops", "run", path, "--no-track", "--quiet", cwd=root, check_codes=(0,))

        def executed_cells(folder: Path) -> int:
            newest = max(folder.glob("*.ipynb"), key=lambda p: p.stat().st_mtime)
            nb = json.loads(newest.read_text())
            return sum(1 for c in nb["cells"] if c.get("execution_count"))

        ta, tb = alternate(papermill_api, lambda: ours(), args.pairs)
        done = executed_cells(root / "runs" / Path(big).stem)
        assert done == args.cells, f"nbops executed {done} of {args.cells} cells"
        result = report(f"A {args.cells}-cell trivial notebook vs papermill's own execution of it",
                        (f"papermill API, no per-cell saves, written once ({args.cells} cells)", ta),
                        ("nbops run --no-track", tb), f"cells-{args.cells}-vs-papermill", 3.0)
        small_times = [timed(lambda: ours(small)) for _ in range(3)]
        base = statistics.median(small_times)
        per_big = (statistics.median(tb) - base) / (args.cells - tenth) * 1000
        print(f"\nfor context: nbops run of {tenth} cells: median {base:.2f} s; the {args.cells - tenth} "
              f"cells more cost {per_big:.2f} ms each (per-cell cost at {tenth} cells, kernel start "
              f"included: {base / tenth * 1000:.2f} ms)")
        if args.cli_cells:
            sample = write_cells(root / "notebooks" / f"cli{args.cli_cells}.ipynb", args.cli_cells)
            cli = timed(lambda: run(BIN / "papermill", sample, out / "cli.ipynb", "--no-progress-bar",
                                    check_codes=(0,)))
            mine = timed(lambda: ours(sample))
            print(f"for context: papermill CLI (a save per cell start and end) on {args.cli_cells} cells: "
                  f"{cli:.2f} s; nbops run: {mine:.2f} s")
        save("cells", [result])
        return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
