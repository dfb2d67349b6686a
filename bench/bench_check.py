"""`nbops check` on 200 notebooks (30 cells, some images) against the baselines users run today.

Targets (../shared/BENCHMARKS.md):
- hygiene: vs `nbstripout --verify` one process per file, as a git filter runs it (ratio <= 0.05);
  that baseline costs ~1.8 s a file, so it is timed on a sample and scaled to all files;
- hygiene: vs one `nbstripout --verify` process over all files (ratio <= 1.0);
- lint: vs `nbqa ruff` on the same notebooks (ratio <= 0.1).
Usage: python bench/bench_check.py [--notebooks 200] [--sample 10] [--pairs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, report, run, save  # noqa: E402
from make_notebooks import notebook, write  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", type=int, default=200)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text("[tool.nbops]\n")
        files = [write(root / "notebooks" / f"nb{i:03d}.ipynb", notebook(30, i, images=3 if i % 4 == 0 else 0))
                 for i in range(args.notebooks)]
        sample = files[: args.sample]

        def per_file():
            for f in sample:
                run(BIN / "nbstripout", "--verify", f)

        def one_process():
            run(BIN / "nbstripout", "--verify", *files)

        def nbqa():
            run(BIN / "nbqa", "ruff", "notebooks", cwd=root)

        def ours():
            run(BIN / "nbops", "check", "notebooks", cwd=root)

        results = []
        ta, tb = alternate(per_file, ours, args.pairs)
        results.append(report(f"hygiene: nbops check vs nbstripout per file ({args.notebooks} notebooks)",
                              (f"nbstripout --verify, one process per file ({args.sample} files)", ta),
                              ("nbops check", tb), "check-vs-nbstripout-per-file", 0.05,
                              scale=len(files) / len(sample)))
        ta, tb = alternate(one_process, ours, args.pairs)
        results.append(report("hygiene: nbops check vs one nbstripout process",
                              ("nbstripout --verify, all files in one process", ta), ("nbops check", tb),
                              "check-vs-nbstripout-one-process", 1.0))
        ta, tb = alternate(nbqa, ours, args.pairs)
        results.append(report("lint: nbops check (ruff findings and its own checks) vs nbqa ruff",
                              ("nbqa ruff", ta), ("nbops check", tb), "lint-vs-nbqa", 0.1))
        save("check", results)
        return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
