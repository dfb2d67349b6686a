"""Nothing changed: `nbops plan` + `nbops run --changed` with every notebook cached, against
`nbops run` executing them (../shared/BENCHMARKS.md: ratio <= 0.1).

Usage: python bench/bench_plan.py [--notebooks 50] [--pairs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, commit_all, report, run, save  # noqa: E402


def trivial(i: int) -> str:
    import json

    cells = [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [],
              "execution_count": None, "source": f"n = {i}"},
             {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
              "source": "import nbops\nnbops.record('square', n * n)"}]
    return json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n")
        base = commit_all(root, "empty")
        (root / "notebooks").mkdir()
        for i in range(args.notebooks):
            (root / "notebooks" / f"nb{i:02d}.ipynb").write_text(trivial(i))
        commit_all(root, "notebooks")
        notebooks = sorted(str(p.relative_to(root)) for p in (root / "notebooks").glob("*.ipynb"))

        def baseline():  # executes every notebook (and so keeps them all cached)
            run(BIN / "nbops", "run", *notebooks, cwd=root, check_codes=(0,))

        def ours():
            run(BIN / "nbops", "plan", "--base", base, cwd=root, check_codes=(0,))
            done = run(BIN / "nbops", "run", "--changed", "--base", base, cwd=root, check_codes=(0,))
            assert "nothing to run" in done.stdout, done.stdout

        tb, to = alternate(baseline, ours, args.pairs)
        result = report(f"nothing changed ({args.notebooks} cached notebooks)",
                        (f"nbops run of {args.notebooks} notebooks", tb),
                        ("nbops plan + nbops run --changed (all cached)", to), "nothing-changed", 0.1)
        save("plan", [result])
        return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
