"""`nbops review` (markdown + HTML) against `nbdiff` (nbdime's text diff) on a large notebook pair.

500 cells with image outputs, 20 cells changed, committed as two revisions in a scratch git repo.
Goal (../shared/BENCHMARKS.md): ratio <= 0.5 while writing more, same changed cells reported.
Usage: python bench/bench_review.py [--cells 500] [--changed 20] [--pairs 5]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, commit_all, report, run, save  # noqa: E402
from make_notebooks import notebook, write  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=500)
    ap.add_argument("--changed", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "pyproject.toml").write_text("[tool.nbops]\n")
        code_cells = [i for i in range(1, args.cells) if i % 5]
        changed = set(code_cells[:: max(1, len(code_cells) // args.changed)][: args.changed])
        base = write(repo / "notebooks" / "big.ipynb", notebook(args.cells, 1, images=50))
        base_copy = write(repo / "base.ipynb", notebook(args.cells, 1, images=50))
        commit_all(repo, "base")
        write(base, notebook(args.cells, 1, images=50, change=changed))
        commit_all(repo, "head")
        size = base.stat().st_size / 1e6
        out = repo / "review"

        def baseline():
            return run(BIN / "nbdiff", str(base_copy), str(base))

        def ours():
            return run(BIN / "nbops", "review", "--base", "HEAD~1", "--out", str(out), cwd=repo)

        tb, to = alternate(baseline, ours, args.pairs)
        # same changed cells reported?
        md = (out / "review.md").read_text()
        ours_cells = {int(m) for m in re.findall(r"\*\*cell (\d+), code, modified", md)}
        nbdiff_cells = {int(m) + 1 for m in re.findall(r"modified /cells/(\d+)/source", baseline().stdout)}
        written = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f"notebook pair: {args.cells} cells, {size:.1f} MB each, {len(changed)} cells changed; "
              f"nbops wrote {written:.1f} MB (markdown + HTML)")
        print(f"changed cells: nbops {len(ours_cells)}, nbdiff {len(nbdiff_cells)}, same: {ours_cells == nbdiff_cells}")
        result = report("review of a large notebook", ("nbdiff", tb), ("nbops review", to),
                        "review-large-notebook", 0.5)
        result["same_cells"] = ours_cells == nbdiff_cells
        save("review", [result])
        return 0 if result["verdict"] == "PASS" and result["same_cells"] else 1


if __name__ == "__main__":
    sys.exit(main())
