"""`git merge` of notebooks through the driver `nbops setup` installs (real git, the real driver):
nothing is lost. nbdime's own driver crashed when both branches appended a cell and left the file
byte for byte "ours" with no conflict marker, so that `git add` dropped the other branch's cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nbops.ci import mergedriver

NBOPS = str(Path(sys.executable).with_name("nbops"))
NB = "analysis.ipynb"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp_path / "home"), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", *args], cwd=root, env=_env(root.parent), capture_output=True, text=True,
                          timeout=120)
    assert not check or done.returncode == 0, f"git {args}: {done.stdout}{done.stderr}"
    return done


def _cell(cell_id: str, source: str, kind: str = "code") -> dict:
    cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _notebook(cells: list[dict], kernel: str = "python3") -> str:
    """The notebook's JSON as the strip filter commits it (nbformat's layout)."""
    cells = [{**c, "source": c["source"].splitlines(keepends=True)} for c in cells]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": kernel, "display_name": f"Python ({kernel})", "language": "python"}}}
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _commit(root: Path, branch: str, text: str, parent: str | None = None) -> None:
    """Commit TEXT as the notebook on BRANCH with git's plumbing: the JSON is already what the
    strip filter commits, and the filter's start-up (nbformat) would cost a second a commit."""
    def git(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=root, env=_env(root.parent), input=stdin,
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    blob = git("hash-object", "-w", "--no-filters", "--stdin", stdin=text)
    tree = git("mktree", stdin=f"100644 blob {blob}\t{NB}\n")
    commit = git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", branch)
    git("update-ref", f"refs/heads/{branch}", commit)


BASE = [_cell("a", "x = 1"), _cell("b", "y = 2")]


@pytest.fixture
def repo(tmp_path):
    """A git repository set up by `nbops setup`, the base notebook committed on main."""
    (tmp_path / "home").mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    done = subprocess.run([NBOPS, "setup"], cwd=root, env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "nbops.ci.mergedriver" in _git(root, "config", "merge.jupyternotebook.driver").stdout
    _commit(root, "main", _notebook(BASE))
    return root


def _branches(root: Path, ours: list[dict], theirs: list[dict], ours_kernel: str = "python3",
              theirs_kernel: str = "python3") -> subprocess.CompletedProcess:
    """Commit OURS on main and THEIRS on branch `other`, both on the base; `git merge other` on main."""
    base = _git(root, "rev-parse", "main").stdout.strip()
    _commit(root, "other", _notebook(theirs, theirs_kernel), base)
    _commit(root, "main", _notebook(ours, ours_kernel), base)
    _git(root, "reset", "-q", "--hard", "main")
    return _git(root, "merge", "other", "-m", "merge", check=False)


def _result(root: Path) -> tuple[dict, str]:
    text = (root / NB).read_text()
    return json.loads(text), text  # a notebook Jupyter opens, even with conflicts in it


def _unmerged(root: Path) -> bool:
    """Whether git holds the notebook as unmerged (ours and theirs staged: `git status` says UU)."""
    return {line.split()[2] for line in _git(root, "ls-files", "-u", NB).stdout.splitlines()} >= {"2", "3"}


def _sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"]]


@pytest.mark.parametrize("theirs_cell", [_cell("d", "print('theirs')"),  # similar: nbdime 4.0 crashed here
                                         _cell("d", "# Results\nwhat we found", "markdown")])
def test_both_branches_append_a_cell_both_are_kept(repo, theirs_cell):
    done = _branches(repo, [*BASE, _cell("c", "print('ours')")], [*BASE, theirs_cell])
    nb, _ = _result(repo)
    sources = _sources(nb)
    assert "print('ours')" in sources and "".join(theirs_cell["source"]) in sources, sources
    assert [c["id"] for c in nb["cells"] if c["id"] in "abcd"] == ["a", "b", "c", "d"]  # whole cells, ours first
    # the order of two insertions is for the user to decide: a conflict git reports
    assert done.returncode == 1 and "CONFLICT" in done.stdout and _unmerged(repo), done.stdout + done.stderr
    assert any("<<<<<<< local" in s for s in sources) and any(">>>>>>> remote" in s for s in sources)
    _git(repo, "add", NB)  # what the user commits after looking: both cells
    _git(repo, "commit", "-q", "-m", "merged")
    committed = json.loads(_git(repo, "show", f"HEAD:{NB}").stdout)
    assert {"c", "d"} <= {c["id"] for c in committed["cells"]}


def test_edits_to_different_cells_merge_cleanly(repo):
    done = _branches(repo, [_cell("a", "x = 10"), BASE[1]], [BASE[0], _cell("b", "y = 20")])
    assert done.returncode == 0, done.stdout + done.stderr
    nb, _ = _result(repo)
    assert _sources(nb) == ["x = 10", "y = 20"]
    assert not _unmerged(repo) and _git(repo, "diff", "--cached", "--name-only").stdout == ""


def test_both_edit_one_cell_is_a_reported_conflict(repo):
    done = _branches(repo, [_cell("a", "x = 'ours'"), BASE[1]], [_cell("a", "x = 'theirs'"), BASE[1]])
    assert done.returncode == 1 and "CONFLICT" in done.stdout and _unmerged(repo), done.stdout + done.stderr
    nb, _ = _result(repo)
    first = _sources(nb)[0]
    assert "<<<<<<< local" in first and "x = 'ours'" in first and "x = 'theirs'" in first, first
    assert _sources(nb)[1:] == ["y = 2"]


def test_a_metadata_conflict_is_reported_with_both_values(repo):
    done = _branches(repo, BASE, BASE, ours_kernel="env-ours", theirs_kernel="env-theirs")
    assert done.returncode == 1 and "CONFLICT" in done.stdout and _unmerged(repo), done.stdout + done.stderr
    _, text = _result(repo)
    assert "env-ours" in text and "env-theirs" in text


def test_when_nbdime_fails_git_text_merge_leaves_markers(tmp_path, monkeypatch, capsys):
    """Any failure of nbdime's: git merge-file writes both sides with conflict markers into %A."""
    for name, cells in (("base", BASE), ("ours", [*BASE, _cell("c", "print('ours')")]),
                        ("theirs", [*BASE, _cell("d", "print('theirs')")])):
        (tmp_path / name).mkdir()
        (tmp_path / name / NB).write_text(_notebook(cells))

    def crash(*_):
        raise TypeError("unhashable type: 'NotebookNode'")

    monkeypatch.setattr(mergedriver, "merge", crash)
    ours = tmp_path / "ours" / NB
    assert mergedriver.main([str(tmp_path / "base" / NB), str(ours), str(tmp_path / "theirs" / NB), "7", NB]) == 1
    text = ours.read_text()
    assert "<<<<<<< ours" in text and ">>>>>>> theirs" in text
    assert "print('ours')" in text and "print('theirs')" in text
    assert "git's text merge" in capsys.readouterr().err
