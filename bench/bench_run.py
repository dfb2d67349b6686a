"""Many small notebooks: `nbops run --jobs 2` of 10 trivial notebooks against a loop of 10
`papermill` CLI calls (goal <= 0.25) and papermill's Python API, sequential, in one process
(goal <= 0.6). ../shared/BENCHMARKS.md. Both sides execute and write the same notebooks; the
nbops rows are untracked like papermill. Issue 15: the same run tracked in the embedded MLflow
store against untracked (goal <= 1.2).

Usage: python bench/bench_run.py [--notebooks 10] [--pairs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, run, save  # noqa: E402

PM_API = """
import sys, papermill as pm
for src in sys.argv[2:]:
    pm.execute_notebook(src, sys.argv[1] + '/' + src.rsplit('/', 1)[-1], parameters={'n': 3},
                        progress_bar=False)
"""


def write_trivial(folder: Path, count: int) -> list[str]:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        cells = [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [],
                  "execution_count": None, "source": "n = 1"},
                 {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
                  "source": f"value = n * {i}\nprint(value)"}]
        path = folder / f"nb{i:02d}.ipynb"
        path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))
        paths.append(str(path))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        paths = write_trivial(root / "notebooks", args.notebooks)
        out = root / "out"
        out.mkdir()

        def cli_loop():
            for p in paths:
                run(BIN / "papermill", p, out / Path(p).name, "-p", "n", "3", "--no-progress-bar", check_codes=(0,))

        def api():
            run(BIN / "python", "-c", PM_API, out, *paths, check_codes=(0,))

        def ours():
            run(BIN / "nbops", "run", *paths, "-p", "n=3", "--jobs", "2", "--no-track", cwd=root, check_codes=(0,))

        results = []
        ta, tb = alternate(cli_loop, ours, args.pairs)
        results.append(report(f"{args.notebooks} trivial notebooks vs a loop of papermill CLI calls",
                              (f"papermill CLI x{args.notebooks}", ta), ("nbops run --jobs 2 --no-track", tb),
                              "many-notebooks-vs-papermill-cli", 0.25))
        ta, tb = alternate(api, ours, args.pairs)
        results.append(report(f"{args.notebooks} trivial notebooks vs papermill's API in one process",
                              ("papermill API, sequential, one process", ta), ("nbops run --jobs 2 --no-track", tb),
                              "many-notebooks-vs-papermill-api", 0.6))

        def tracked():
            run(BIN / "nbops", "run", *paths, "-p", "n=3", "--jobs", "2", cwd=root, check_codes=(0,))

        # issue 15: tracking into the embedded store against the same run untracked
        ta, tb = alternate(ours, tracked, args.pairs)
        results.append(report(f"{args.notebooks} trivial notebooks, tracked in MLflow vs untracked",
                              ("nbops run --jobs 2 --no-track", ta), ("nbops run --jobs 2 (embedded store)", tb),
                              "tracked-vs-untracked", 1.2))
        save("run", results)
        return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
