"""Pipelines of notebooks (issue 25): a diamond prepare -> train_a, train_b -> evaluate.

1. `nbops run` of the diamond (--jobs 2: train_a and train_b in parallel) against the same four
   notebooks run as four `nbops run` calls by hand, in order (goal <= 0.8);
2. nothing changed: `nbops plan` + `nbops run --changed` with the diamond cached, against running
   it (goal <= 0.1);
3. against `ploomber build --force` of the same notebooks (ploomber's parameter conventions:
   `upstream`/`product`, its parallel executor). ploomber is no dependency of nbops: the first run
   installs it with pip into bench/.venv-ploomber (ignored by git); `--no-ploomber` skips it.

Both sides' notebooks do the same work: prepare writes a CSV (nbops: an MLflow artifact, with
`kit.log_text`, which on the embedded store imports no mlflow; ploomber: a product file), the
others read what they need (nbops: `kit.upstream`, which on the embedded store imports no mlflow
either; ploomber: `upstream[...]` paths) and write a value
(nbops: `nbops.record`; ploomber: a JSON product). nbops also tracks every notebook as an MLflow run
(executed notebook, HTML page, records), ploomber tracks nothing. The two trainings sleep 1 s each,
standing for work that can overlap.

Usage: python bench/bench_pipeline.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import BIN, alternate, commit_all, report, run, save  # noqa: E402

HERE = Path(__file__).parent
PLOOMBER = HERE / ".venv-ploomber" / "bin" / "ploomber"

NBOPS_CELLS = {
    "prepare": ("rows = 100", "import nbops\nfrom nbops import kit\nnbops.record('rows', rows)\n"
                "kit.log_text('x,y\\n' + '1,2\\n' * rows, 'data/train.csv')"),
    "train_a": ("seed = 0", "import time, nbops\nfrom nbops import kit\n"
                "up = kit.upstream('prepare')\nn = len(up.artifact('data/train.csv').read_text().splitlines())\n"
                "time.sleep(1)\nnbops.record('score', n / 100)"),
    "train_b": ("seed = 1", "import time, nbops\nfrom nbops import kit\n"
                "up = kit.upstream('prepare')\nn = len(up.artifact('data/train.csv').read_text().splitlines())\n"
                "time.sleep(1)\nnbops.record('score', n / 50)"),
    "evaluate": ("k = 1", "import nbops\nfrom nbops import kit\n"
                 "nbops.record('best', max(kit.upstream('train_a').metrics['score'], "
                 "kit.upstream('train_b').metrics['score']))"),
}
NEEDS = {"prepare": [], "train_a": ["prepare"], "train_b": ["prepare"], "evaluate": ["train_a", "train_b"]}

PLOOMBER_CELLS = {  # the same work, reading upstreams as ploomber hands them (product files)
    "prepare": "import pathlib\npathlib.Path(product['data']).write_text('x,y\\n' + '1,2\\n' * rows)",
    "train_a": "import time, json, pathlib\nn = len(pathlib.Path(upstream['prepare']['data']).read_text()"
               ".splitlines())\ntime.sleep(1)\npathlib.Path(product['data']).write_text(json.dumps(n / 100))",
    "train_b": "import time, json, pathlib\nn = len(pathlib.Path(upstream['prepare']['data']).read_text()"
               ".splitlines())\ntime.sleep(1)\npathlib.Path(product['data']).write_text(json.dumps(n / 50))",
    "evaluate": "import json, pathlib\nbest = max(json.loads(pathlib.Path(upstream[u]['data']).read_text())"
                " for u in ('train_a', 'train_b'))\npathlib.Path(product['data']).write_text(json.dumps(best))",
}


def notebook(cells: list[tuple[str, list[str]]], meta: dict) -> str:
    nb_cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags} if tags else {}, "outputs": [],
                 "execution_count": None, "source": src} for i, (src, tags) in enumerate(cells)]
    return json.dumps({"cells": nb_cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, **meta}})


def nbops_project(root: Path) -> list[str]:
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\nruns/\n")
    folder = root / "notebooks" / "diamond"
    folder.mkdir(parents=True)
    for name, (params, code) in NBOPS_CELLS.items():
        meta = {"nbops": {"needs": NEEDS[name]}} if NEEDS[name] else {}
        (folder / f"{name}.ipynb").write_text(notebook([(params, ["parameters"]), (code, [])], meta))
    commit_all(root, "diamond")
    return [f"notebooks/diamond/{n}.ipynb" for n in NBOPS_CELLS]


def ploomber_project(root: Path) -> None:
    root.mkdir()
    tasks = []
    for name, code in PLOOMBER_CELLS.items():
        params = "upstream = None\nproduct = None\n" + ("rows = 100" if name == "prepare" else "")
        if NEEDS[name]:
            params = f"upstream = {NEEDS[name]!r}\nproduct = None"
        (root / f"{name}.ipynb").write_text(notebook([(params, ["parameters"]), (code, [])], {}))
        tasks.append(f"  - source: {name}.ipynb\n    product:\n      nb: out/{name}.ipynb\n"
                     f"      data: out/{name}.json\n")
    (root / "pipeline.yaml").write_text("executor: parallel\n\ntasks:\n" + "".join(tasks))


def install_ploomber() -> bool:
    """ploomber (and ipykernel, for its kernels) in a venv of its own, made on first use."""
    import subprocess

    if PLOOMBER.exists():
        return True
    venv = PLOOMBER.parent.parent
    print(f"installing ploomber into {venv} (once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "ploomber", "ipykernel"], check=True,
                       timeout=1200, capture_output=True, text=True)
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"ploomber could not be installed: {str(exc)[-300:]}")
        return False
    return PLOOMBER.exists()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--no-ploomber", action="store_true", help="skip the comparison with ploomber")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        paths = nbops_project(root)
        nbops = str(BIN / "nbops")

        def diamond():
            run(nbops, "run", *paths, "--jobs", "2", cwd=root, check_codes=(0,))

        def by_hand():  # each call alone: the ones it needs are read from their newest runs
            for path in paths:
                run(nbops, "run", path, cwd=root, check_codes=(0,))

        th, td = alternate(by_hand, diamond, args.pairs)
        results.append(report("a diamond pipeline (4 notebooks, train_a | train_b)",
                              ("four nbops run calls by hand, in order", th),
                              ("nbops run of the diamond --jobs 2", td), "pipeline-vs-by-hand", 0.8))

        # nothing changed: prepare edited (uncommitted) and the diamond run once at that state,
        # so plan --base HEAD lists all four and every one is cached
        prepare = root / paths[0]
        prepare.write_text(prepare.read_text().replace("rows = 100", "rows = 120"))
        diamond()

        def cached():
            run(nbops, "plan", "--base", "HEAD", cwd=root, check_codes=(0,))
            done = run(nbops, "run", "--changed", "--base", "HEAD", cwd=root, check_codes=(0,))
            assert "nothing to run" in done.stdout, done.stdout

        td2, tc = alternate(diamond, cached, args.pairs)
        results.append(report("nothing changed (the diamond cached)", ("nbops run of the diamond --jobs 2", td2),
                              ("nbops plan + nbops run --changed (all cached)", tc), "pipeline-cached", 0.1))

        if not args.no_ploomber and install_ploomber():
            proot = Path(tmp) / "ploomber"
            ploomber_project(proot)

            def ploomber_build():
                run(PLOOMBER, "build", "--force", cwd=proot, check_codes=(0,))

            tp, td3 = alternate(ploomber_build, diamond, args.pairs)
            results.append(report("the diamond against ploomber", ("ploomber build --force (parallel executor)", tp),
                                  ("nbops run of the diamond --jobs 2", td3), "pipeline-vs-ploomber", 1.0))
        else:
            print("\nploomber: skipped")
    save("pipeline", results)
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
