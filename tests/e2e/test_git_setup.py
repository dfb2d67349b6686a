"""`nbops setup` on a fresh `nbops init` project, through real git: the filter keeps cell ids (a
touched notebook is not modified), `git diff` is nbdime's, and a commit from a shell without the
venv on PATH (an IDE, JupyterLab's git panel) runs the hooks and the filter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

NBOPS = str(Path(sys.executable).with_name("nbops"))
BARE_PATH = "/usr/bin:/bin"  # no venv: git, sh and bash only


def _bare_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": BARE_PATH, "HOME": str(tmp_path / "home"), "PRE_COMMIT_HOME": str(tmp_path / "pc-cache"),
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com", "LANG": "C.UTF-8"}


def _git_bare(root: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, env=_bare_env(tmp_path), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def setup_project(tmp_path):
    """`nbops init p`, `git init`, `nbops setup`, first commit from a bare shell."""
    (tmp_path / "home").mkdir()
    assert subprocess.run([NBOPS, "init", "p"], cwd=tmp_path, capture_output=True).returncode == 0
    root = tmp_path / "p"
    git(root, "init", "-q", "-b", "main")
    done = subprocess.run([NBOPS, "setup"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    git(root, "add", "-A")
    commit = _git_bare(root, tmp_path, "commit", "-m", "init")
    assert commit.returncode == 0, commit.stdout + commit.stderr
    return root


def _notebooks(root: Path) -> list[Path]:
    return sorted(root.glob("notebooks/*.ipynb")) + sorted(root.glob("templates/*.ipynb"))


def _add_output(path: Path, line: str) -> None:
    """What running the notebook and editing its last code cell leaves: outputs, counts,
    JupyterLab's timestamps, a changed line; saved with another indent."""
    nb = json.loads(path.read_text())
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    cell["source"] = source + f"\nprint({line!r})"
    cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["output left in\n"]}]
    cell["execution_count"] = 7
    cell["metadata"]["execution"] = {"iopub.execute_input": "2025-01-01T00:00:00Z"}
    path.write_text(json.dumps(nb, indent=2))


def test_touched_notebooks_are_not_modified(setup_project, tmp_path):
    root = setup_project
    ids = {p: [c["id"] for c in json.loads(p.read_text())["cells"]] for p in _notebooks(root)}
    assert len(ids) >= 2
    for path in ids:
        path.touch()
    assert git(root, "status", "--porcelain") == ""
    for path, cell_ids in ids.items():  # committed with the ids the working tree has
        committed = json.loads(git(root, "show", f"HEAD:{path.relative_to(root).as_posix()}"))
        assert [c["id"] for c in committed["cells"]] == cell_ids


def test_git_diff_is_nbdimes_cell_diff_without_outputs(setup_project, tmp_path):
    root = setup_project
    notebook = root / "notebooks" / "example.ipynb"
    _add_output(notebook, "changed line")
    done = _git_bare(root, tmp_path, "-c", "color.ui=never", "diff", "--", "notebooks/example.ipynb")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("nbdiff ") and "## modified /cells/" in out and "/source:" in out
    assert "changed line" in out
    assert "output left in" not in out and '"cell_type"' not in out  # through the filter; not JSON
    assert "replaced /cells" not in out  # ids kept: no renumbering
    alias = _git_bare(root, tmp_path, "nbdiff", "HEAD", "--", "notebooks/example.ipynb")  # nbdime's command
    assert alias.returncode == 0 and "## modified /cells/" in alias.stdout and "changed line" in alias.stdout


def test_commit_without_venv_runs_hooks_and_strips_only_the_commit(setup_project, tmp_path):
    root = setup_project
    notebook = root / "notebooks" / "example.ipynb"
    _add_output(notebook, "second version")
    git(root, "add", "notebooks/example.ipynb")
    done = _git_bare(root, tmp_path, "commit", "-m", "change")
    assert done.returncode == 0, done.stdout + done.stderr
    hooks = done.stderr.splitlines()  # git gives a hook's output to stderr
    for hook in ("strip outputs", "nbQA ruff", "nbops check"):
        assert any(line.startswith(hook) and line.endswith("Passed") for line in hooks), done.stderr
    committed = git(root, "show", "HEAD:notebooks/example.ipynb")
    assert "second version" in committed and "output left in" not in committed and "iopub" not in committed
    assert "output left in" in notebook.read_text()  # the working tree keeps its outputs
    assert git(root, "status", "--porcelain") == ""


def test_a_hook_failure_blocks_the_commit_from_a_bare_shell(setup_project, tmp_path):
    """The hooks really run there: a hard-coded secret stops the commit."""
    root = setup_project
    nb = json.loads((root / "notebooks" / "example.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "leak", "metadata": {},
                        "outputs": [], "source": 'api_key = "a8f5f167f44f4964e6c998dee827110c"'})
    (root / "notebooks" / "example.ipynb").write_text(json.dumps(nb, indent=1))
    git(root, "add", "-A")
    done = _git_bare(root, tmp_path, "commit", "-m", "leak")
    assert done.returncode != 0
    assert "nbops check" in done.stderr and "Failed" in done.stderr
    assert "notebooks/example.ipynb:cell" in done.stderr and "NB005" in done.stderr


def test_v3_notebook_is_committed_as_v4_and_stays_clean(setup_project, tmp_path):
    root = setup_project
    v3 = {"metadata": {"name": "old"}, "nbformat": 3, "nbformat_minor": 0, "worksheets": [{"metadata": {}, "cells": [
        {"cell_type": "code", "collapsed": False, "input": "print('hi')", "language": "python", "metadata": {},
         "outputs": [{"output_type": "stream", "stream": "stdout", "text": "hi\n"}], "prompt_number": 1}]}]}
    path = root / "old.ipynb"
    path.write_text(json.dumps(v3))
    git(root, "add", "old.ipynb")
    committed = json.loads(git(root, "show", ":old.ipynb"))
    assert committed["nbformat"] == 4 and committed["cells"][0]["outputs"] == []
    path.touch()
    assert git(root, "status", "--porcelain") == "A  old.ipynb"


def test_a_broken_notebook_is_refused_by_git_add(setup_project, tmp_path):
    root = setup_project
    (root / "notebooks" / "broken.ipynb").write_text("{oops")
    done = _git_bare(root, tmp_path, "add", "notebooks/broken.ipynb")
    assert done.returncode != 0
    assert "notebooks/broken.ipynb: not valid JSON" in done.stderr


def test_a_merge_from_a_bare_shell_keeps_both_branches_cells(setup_project, tmp_path):
    """Both branches append a cell, similar ones (nbdime 4.0's own driver crashed on these and left
    "ours" without a marker): the merge driver `nbops setup` installs reports the conflict with
    both cells whole in the notebook."""
    root = setup_project
    path = root / "notebooks" / "example.ipynb"
    base = json.loads(path.read_text())

    def append(cell_id: str, source: str) -> None:
        cell = {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {}, "outputs": [],
                "source": source}
        path.write_text(json.dumps({**base, "cells": [*base["cells"], cell]}, indent=1))
        done = _git_bare(root, tmp_path, "commit", "-q", "--no-verify", "-am", cell_id)
        assert done.returncode == 0, done.stdout + done.stderr

    assert _git_bare(root, tmp_path, "checkout", "-q", "-b", "other").returncode == 0
    append("theirs", "score = model.score(X_val, y_val)\nprint('validation score', score)")
    assert _git_bare(root, tmp_path, "checkout", "-q", "main").returncode == 0
    append("ours", "score = model.score(X_test, y_test)\nprint('test score', score)")
    done = _git_bare(root, tmp_path, "merge", "other", "-m", "merge")
    assert done.returncode == 1 and "CONFLICT (content): Merge conflict in notebooks/example.ipynb" in done.stdout
    cells = json.loads(path.read_text())["cells"]
    ids = [c["id"] for c in cells]
    assert ids.index("ours") < ids.index("theirs")  # both whole, ours first, between nbdime's marker cells
    assert "UU notebooks/example.ipynb" in _git_bare(root, tmp_path, "status", "--porcelain").stdout


def test_browser_diff_is_git_nbdiff_web_and_colour_follows_git(setup_project, tmp_path):
    """Issue 23: `git difftool -t nbdime` printed the terminal diff (git runs a path's diff driver
    instead of any difftool), and the driver coloured `git diff --no-color` and `git diff > file`."""
    root = setup_project
    config = git(root, "config", "--local", "--list")
    assert "difftool.nbdime" not in config  # never reached: not configured
    assert f"alias.nbdiff-web=!{sys.executable} -m nbdime.webapp.nbdiffweb" in config
    _add_output(root / "notebooks" / "example.ipynb", "changed line")
    path = "notebooks/example.ipynb"
    plain = _git_bare(root, tmp_path, "diff", "--no-color", "--", path)
    assert plain.returncode == 0 and "changed line" in plain.stdout and "\x1b[" not in plain.stdout
    redirected = _git_bare(root, tmp_path, "diff", "--", path)  # output to a pipe, color.ui auto
    assert "changed line" in redirected.stdout and "\x1b[" not in redirected.stdout
    forced = _git_bare(root, tmp_path, "diff", "--color", "--", path)
    assert "changed line" in forced.stdout and "\x1b[" in forced.stdout
    never = _git_bare(root, tmp_path, "-c", "color.ui=never", "diff", "--color=always", "--", path)
    assert "\x1b[" in never.stdout  # the command's own option wins over the config, as in git
    # nbdime's browser diff through the alias: its server starts (no browser here) and serves the diff
    web = subprocess.Popen(["git", "nbdiff-web", "--port", "0", "--browser", "disabled", "HEAD", "--", path],
                           cwd=root, env=_bare_env(tmp_path), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        for line in web.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "URL: http://" in line or len(lines) > 40:
                break
    finally:
        # the whole group: git runs the alias through a shell, and nbdime's server is its
        # grandchild (terminating git alone left the server running after the suite)
        try:
            os.killpg(web.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # all of it had exited already
        web.wait(timeout=30)
    assert any("URL: http://" in line for line in lines), "".join(lines)
