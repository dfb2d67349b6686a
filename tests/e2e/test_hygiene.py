"""Git hygiene: the one strip transform against the real `nbstripout --keep-id` (with one extra key,
`metadata.language_info.version`), `nbops setup`'s git config, and the repo's own pre-commit hooks,
offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nbops.review.check import run_check
from tests.conftest import REPO, git

VENV_BIN = str(Path(sys.executable).parent)
PY = sys.executable
# nbstripout's own command line, run as `python -m nbstripout` after `import nbops`, whose finder
# defers the grammar rfc3987-syntax builds at import (nbops/_deferred_rfc3987.py): nbformat's
# schema never asks for it, and each of this file's dozen nbstripout processes spent 1.4 s
# building it (1.6 s a process instead of 0.24; the bytes written are the same)
NBSTRIPOUT = [PY, "-c", "import nbops, runpy, sys; sys.argv[0] = 'nbstripout'; "
              "runpy.run_module('nbstripout', run_name='__main__', alter_sys=True)"]


def _code(src, outputs=(), count=None, meta=None, cid=None):
    cell = {"cell_type": "code", "execution_count": count, "metadata": meta or {}, "outputs": list(outputs),
            "source": src}
    return {**cell, "id": cid} if cid else cell


def _md(src, meta=None, cid=None):
    cell = {"cell_type": "markdown", "metadata": meta or {}, "source": src}
    return {**cell, "id": cid} if cid else cell


def _v4(cells, meta=None, minor=5):
    metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python", "version": "3.11.4"}, **(meta or {})}
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": minor}


STREAM = {"name": "stdout", "output_type": "stream", "text": ["héllo ✓ 日本\n", "<!-- x -->\n"]}
RESULT = {"data": {"text/plain": ["42"]}, "execution_count": 3, "metadata": {}, "output_type": "execute_result"}
WIDGET = {"data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                                 "version_minor": 0},
                   "text/plain": ["IntSlider()"]}, "metadata": {}, "output_type": "display_data"}
ERROR = {"ename": "ValueError", "evalue": "bad", "output_type": "error", "traceback": ["\u001b[0;31mValueError"]}
WIDGET_STATE = {"application/vnd.jupyter.widget-state+json": {
    "state": {"abc": {"model_name": "IntSliderModel", "state": {"value": 3, "pad": "x" * 50_000}}},
    "version_major": 2, "version_minor": 0}}
NBOPS_META = {"model": {"name": "m"}, "test": {"params": {"n": 1}, "expect": ["accuracy >= 0.5"]}}
NOTEBOOKS = {
    "widgets": _v4([_code("import ipywidgets as w\nw.IntSlider()", [WIDGET], 1, cid="a1"), _md("# T", cid="m1")],
                   {"widgets": WIDGET_STATE, "nbops": NBOPS_META}),
    "collapsed": _v4([_code("print(1)", [STREAM], 2, {"collapsed": True, "scrolled": True, "tags": ["x"]}, "c1"),
                      _md("## H", {"heading_collapsed": True, "hidden": True}, "c2")]),
    "jupyterlab_execution": _v4(
        [_code("x = 1\nx", [RESULT], 3, {"execution": {"iopub.execute_input": "2024-01-01T00:00:00.000Z",
                                                        "shell.execute_reply": "2024-01-01T00:00:01.000Z"},
                                          "ExecuteTime": {"end_time": "2024-01-01"}}, "e1")],
        {"nbops": NBOPS_META, "signature": "sha256:abc"}),
    "outputs": _v4([_code("raise ValueError('bad')", [ERROR], 4, cid="o1"),
                    _code("keep", [STREAM, RESULT], 5, {"tags": ["keep_output"]}, "o2"),
                    _code("init", [STREAM], 6, {"init_cell": True}, "o3"),
                    {"cell_type": "raw", "id": "r1", "metadata": {}, "source": "raw ✓"}]),
    "v4_4_without_ids": _v4([_code("print(2)", [STREAM], 7), _md("text")], minor=4),
}
V3 = {"metadata": {"name": "old", "signature": "sha256:x"}, "nbformat": 3, "nbformat_minor": 0,
      "worksheets": [{"metadata": {}, "cells": [
          {"cell_type": "heading", "level": 1, "metadata": {}, "source": "Old"},
          {"cell_type": "code", "collapsed": False, "input": "print('hi')", "language": "python", "metadata": {},
           "outputs": [{"output_type": "stream", "stream": "stdout", "text": "hi\n"}], "prompt_number": 1},
          {"cell_type": "code", "collapsed": True, "input": "print('hi')", "language": "python", "metadata": {},
           "outputs": [], "prompt_number": 2}]}]}


def _write(folder: Path) -> list[Path]:
    """The notebooks as an editor might leave them: indent 2, ASCII escapes, one with CRLF."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, nb in NOTEBOOKS.items():
        paths.append(folder / f"{name}.ipynb")
        paths[-1].write_text(json.dumps(nb, indent=2), encoding="utf-8")
    (folder / "crlf.ipynb").write_bytes(json.dumps(NOTEBOOKS["collapsed"], indent=1).replace("\n", "\r\n").encode())
    return [*paths, folder / "crlf.ipynb"]


# The intended difference from plain `nbstripout --keep-id`: the kernel's Python version goes too
# (re-running an unchanged notebook on another Python showed it modified; issue 23)
EXTRA = ("--extra-keys", "metadata.language_info.version")


def _nbstripout(*args: str, stdin: bytes | None = None, cwd: Path, extra: bool = True) -> bytes:
    done = subprocess.run([*NBSTRIPOUT, "--keep-id", *(EXTRA if extra else ()), *args],
                          input=stdin, cwd=cwd, capture_output=True, check=True)
    return done.stdout


def test_filter_is_byte_identical_to_nbstripout_keep_id(tmp_path):
    """stdin to stdout, as git's clean filter runs both; plain `--keep-id` differs only in
    keeping metadata.language_info.version."""
    for path in _write(tmp_path / "nb"):
        ours = subprocess.run([PY, "-m", "nbops.notebook.strip"], input=path.read_bytes(),
                              capture_output=True, check=True).stdout
        assert ours == _nbstripout(stdin=path.read_bytes(), cwd=tmp_path), path.name
        plain = json.loads(_nbstripout(stdin=path.read_bytes(), cwd=tmp_path, extra=False))
        assert plain["metadata"]["language_info"].pop("version") == "3.11.4", path.name
        assert json.loads(ours) == plain, path.name
        assert json.loads(ours)["metadata"]["language_info"] == {"name": "python"}, path.name
    stripped = json.loads(ours)
    assert all(not c.get("outputs") for c in stripped["cells"])
    widgets = (tmp_path / "nb" / "widgets.ipynb").read_bytes()
    ours = json.loads(subprocess.run([PY, "-m", "nbops.notebook.strip"], input=widgets, capture_output=True,
                                     check=True).stdout)
    assert "widgets" not in ours["metadata"] and ours["metadata"]["nbops"] == NBOPS_META
    assert [c["id"] for c in ours["cells"]] == ["a1", "m1"]


def test_hook_and_check_fix_write_what_nbstripout_writes(tmp_path):
    """In place: the pre-commit hook's mode and `nbops check --fix` give nbstripout's bytes (with
    metadata.language_info.version among its extra keys), and leave a notebook with nothing to
    strip untouched (as nbstripout does)."""
    theirs, hook = _write(tmp_path / "theirs"), _write(tmp_path / "hook")
    _write(tmp_path / "fix")
    clean = json.dumps(json.loads(_nbstripout(stdin=theirs[0].read_bytes(), cwd=tmp_path)), indent=2)
    for folder in ("theirs", "hook", "fix"):
        (tmp_path / folder / "already_clean.ipynb").write_text(clean)
    subprocess.run([*NBSTRIPOUT, "--keep-id", *EXTRA, *map(str, theirs), "theirs/already_clean.ipynb"],
                   cwd=tmp_path, check=True)
    subprocess.run([PY, "-m", "nbops.notebook.strip", "--hook", *map(str, hook), "hook/already_clean.ipynb"],
                   cwd=tmp_path, check=True, capture_output=True)
    run_check(tmp_path, [str(tmp_path / "fix")], (), fix=True, lint=False)
    for name in [p.name for p in theirs] + ["already_clean.ipynb"]:
        expected = (tmp_path / "theirs" / name).read_bytes()
        assert (tmp_path / "hook" / name).read_bytes() == expected, name
        assert (tmp_path / "fix" / name).read_bytes() == expected, name
    assert (tmp_path / "fix" / "already_clean.ipynb").read_text() == clean
    assert run_check(tmp_path, [str(tmp_path / "fix")], (), lint=False) == []


def test_v3_is_converted_then_stripped_as_nbstripout_strips_v4(tmp_path):
    import nbformat

    from nbops.notebook.strip import strip_text, to_v4

    text = json.dumps(V3)
    ours = strip_text(text)
    converted = to_v4(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
    assert ours.encode() == _nbstripout(stdin=(nbformat.writes(converted) + "\n").encode(), cwd=tmp_path)
    nb = json.loads(ours)
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == 3 and strip_text(text) == ours  # distinct and the same every time
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb["cells"][1:])


def test_a_file_that_is_not_a_notebook_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{oops")
    done = subprocess.run([PY, "-m", "nbops.notebook.strip", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "bad.ipynb: not valid JSON" in done.stderr and bad.read_text() == "{oops"


def test_setup_installs_hooks_drivers_and_filter(project):
    shutil.copy(REPO / ".pre-commit-config.yaml", project)
    done = subprocess.run([f"{VENV_BIN}/nbops", "setup"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "installed pre-commit hooks" in done.stdout
    assert (project / ".git" / "hooks" / "pre-commit").is_file()
    assert git(project, "config", "diff.jupyternotebook.command") == f"{PY} -m nbops.ci.diffdriver --use-filter"
    assert git(project, "config", "filter.nbops.process") == f"{PY} -m nbops.notebook.strip --process"
    assert git(project, "check-attr", "filter", "diff", "merge", "--", "x.ipynb").splitlines() == [
        "x.ipynb: filter: nbops", "x.ipynb: diff: jupyternotebook", "x.ipynb: merge: jupyternotebook"]


def test_setup_repairs_what_nbstripout_install_wrote(project):
    """nbstripout's `*.ipynb diff=ipynb` in .git/info/attributes overrode nbdime's driver, and its
    filter renumbered cell ids; setup removes both, and running it twice changes nothing."""
    subprocess.run([f"{VENV_BIN}/nbstripout", "--install"], cwd=project, check=True)
    (project / ".gitattributes").write_text("*.ipynb diff=jupyternotebook merge=jupyternotebook\n")
    assert git(project, "check-attr", "diff", "--", "x.ipynb") == "x.ipynb: diff: ipynb"
    for _ in range(2):
        subprocess.run([f"{VENV_BIN}/nbops", "setup"], cwd=project, check=True, capture_output=True)
    assert git(project, "check-attr", "diff", "filter", "--", "x.ipynb").splitlines() == [
        "x.ipynb: diff: jupyternotebook", "x.ipynb: filter: nbops"]
    config = git(project, "config", "--local", "--list")
    assert "filter.nbstripout" not in config and "diff.ipynb" not in config
    attributes = (project / ".git" / "info" / "attributes").read_text()
    assert attributes.count("filter=nbops") == 1 and "nbstripout" not in attributes


def test_setup_outside_git_is_a_clear_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    done = subprocess.run([f"{VENV_BIN}/nbops", "setup"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "is not a git repository" in done.stderr


def test_pre_commit_passes_on_the_repo(tmp_path):
    """The repo's tracked files in a fresh git repo: every hook passes, with no network."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    clone = tmp_path / "clone"
    for rel in files.stdout.splitlines():
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "PRE_COMMIT_HOME": str(tmp_path / "pc-cache")}
    done = subprocess.run([f"{VENV_BIN}/pre-commit", "run", "--all-files"], cwd=clone,
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Passed") == 3
