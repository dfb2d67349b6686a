"""`nbops review` (markdown + HTML) against `nbdiff` (nbdime's text diff) on a large notebook pair.

500 cells with image outputs, 20 cells changed, committed as two revisions in a scratch git repo.
Goal (../shared/BENCHMARKS.md): ratio <= 0.5 while writing more, same changed cells reported.
Also (measured, no ratio goal): `--many N` the size of the review folder for an N-notebook change
(pages share one copy of nbdime's web app) and that every notebook is named in review.md;
`--huge-cell LINES` the time for a cell of LINES lines with one line changed (large cells get a
line diff; nbdime alone runs for minutes). NBOPS_BENCH_PYTHONPATH runs another checkout's nbops.
Usage: python bench/bench_review.py [--cells 500] [--changed 20] [--pairs 5] [--many 100] [--huge-cell 30000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, commit_all, report, run, save  # noqa: E402
from make_notebooks import notebook, write  # noqa: E402


def _review(repo: Path, out: Path, timeout: float) -> float:
    """Seconds for `nbops review` of HEAD~1..HEAD (the checkout in NBOPS_BENCH_PYTHONPATH if set)."""
    env = dict(os.environ)
    cmd = [str(BIN / "nbops")]
    if env.get("NBOPS_BENCH_PYTHONPATH"):
        env["PYTHONPATH"] = env["NBOPS_BENCH_PYTHONPATH"]
        cmd = [str(BIN / "python"), "-c", "import sys; from nbops.cli.main import main; sys.exit(main())"]
    start = time.perf_counter()
    subprocess.run([*cmd, "review", "--base", "HEAD~1", "--out", str(out)], cwd=repo, env=env, check=True,
                   capture_output=True, timeout=timeout)
    return time.perf_counter() - start


def many(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "pyproject.toml").write_text("[tool.nbops]\n")
        for i in range(n):
            write(repo / "notebooks" / f"nb{i:03d}.ipynb", notebook(40, i))
        commit_all(repo, "base")
        for i in range(n):
            write(repo / "notebooks" / f"nb{i:03d}.ipynb", notebook(40, i, change={3, 17}))
        commit_all(repo, "head")
        out = repo / "review"
        seconds = _review(repo, out, 1800)
        total = sum(p.stat().st_size for p in out.iterdir())
        files = len(list(out.iterdir()))
        md = (out / "review.md").read_text()
        named = sum(f"notebooks/nb{i:03d}.ipynb`" in md for i in range(n))
    print(f"\n### review of a {n}-notebook change\n\nfolder {total / 1e6:.1f} MB "
          f"({files} files), review.md {len(md):,} characters, "
          f"{named}/{n} notebooks named in review.md, {seconds:.1f} s")
    return {"target": f"review-{n}-notebooks", "bytes": total, "named": named, "seconds": round(seconds, 2)}


def huge(lines: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        (repo / "pyproject.toml").write_text("[tool.nbops]\n")
        body = [f"x_{i} = {i} * 2  # line {i}\n" for i in range(lines)]
        nb = notebook(10, 0)
        nb["cells"][3]["source"] = "".join(body)
        path = write(repo / "notebooks" / "huge.ipynb", nb)
        commit_all(repo, "base")
        body[lines // 2] = "changed = 1\n"
        nb["cells"][3]["source"] = "".join(body)
        write(path, nb)
        commit_all(repo, "head")
        seconds = _review(repo, repo / "review", 3600)
        md = (repo / "review" / "review.md").read_text()
    print(f"\n### a {lines:,}-line cell with one line changed\n\nnbops review {seconds:.1f} s; "
          f"line-diff note in review.md: {'diffed by lines' in md}")
    return {"target": f"review-huge-cell-{lines}", "seconds": round(seconds, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=500)
    ap.add_argument("--changed", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--many", type=int, metavar="N", help="only: the review of an N-notebook change")
    ap.add_argument("--huge-cell", type=int, metavar="LINES", help="only: one cell of LINES lines changed")
    args = ap.parse_args(argv)
    if args.many or args.huge_cell:
        results = ([many(args.many)] if args.many else []) + ([huge(args.huge_cell)] if args.huge_cell else [])
        save("review-scale", results)
        return 0
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
