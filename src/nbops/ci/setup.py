"""`nbops setup`: configure a clone for notebooks.

- the git filter: nbops's strip transform (`notebook/strip.py`: nbstripout's, cell ids kept), as
  git's long-running filter process (one process for every notebook) and as a plain `clean`
  command (nbdime's diff driver runs that one);
- nbdime's diff driver (through `ci/diffdriver.py`, which honours git's `--no-color` and
  `color.diff`), so `git diff` prints nbdime's cell-level diff, and nbdime's mergetool;
- `git nbdiff` and `git nbdiff-web` (nbdime's terminal and browser diffs, as aliases). No
  difftool: git runs a path's diff driver command instead of any difftool, so
  `git difftool -t nbdime` printed the terminal diff (issue 23); `git nbdiff-web` opens the
  browser;
- the merge driver of ours around nbdime's merge (`ci/mergedriver.py`): a conflict is always
  reported with both sides in the file, never "ours" left silently as nbdime's driver once did;
- the pre-commit hooks (`.pre-commit-config.yaml`), their hook told where the project's
  interpreter lives, so that commits from an IDE or JupyterLab's git panel run them too.

Every command written into git's config names this interpreter by its absolute path: none
depends on the venv being on PATH. The attributes go to `.git/info/attributes` (they win over a
committed `.gitattributes`); what `nbstripout --install` wrote there (`*.ipynb diff=ipynb`, which
turned git diff back into raw JSON, and a filter that renumbers cell ids) is removed.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from nbops.core.errors import ConfigError, GitError

ATTRIBUTES = "*.ipynb filter=nbops diff=jupyternotebook merge=jupyternotebook"
_MARK = "# nbops setup: notebooks through nbops's strip filter and nbdime's drivers"
# lines `nbstripout --install` appends to .git/info/attributes (they override .gitattributes)
_NBSTRIPOUT_LINES = ("*.ipynb filter", "*.zpln filter", "*.ipynb diff")
_HOOK_PATH_LINE = "# nbops setup: the project's interpreter first"


def _python() -> str:
    return shlex.quote(sys.executable)


def git_config(python: str) -> dict[str, str]:
    """What `nbops setup` writes into .git/config (PYTHON: the interpreter, shell-quoted)."""
    strip = f"{python} -m nbops.notebook.strip"
    nbdime = f"{python} -m nbdime.vcs.git"
    return {
        "filter.nbops.process": f"{strip} --process",
        "filter.nbops.clean": strip,
        "filter.nbops.smudge": "cat",
        "filter.nbops.required": "true",
        # --use-filter: the working tree's side goes through the clean filter, as git's own diff does
        "diff.jupyternotebook.command": f"{python} -m nbops.ci.diffdriver --use-filter",
        # nbdime's merge; git's text merge where nbdime fails (ci/mergedriver.py)
        "merge.jupyternotebook.driver": f"{python} -m nbops.ci.mergedriver %O %A %B %L %P",
        "merge.jupyternotebook.name": "nbops notebook merge driver (nbdime)",
        "mergetool.nbdime.cmd": f'{nbdime}.mergetool merge "$BASE" "$LOCAL" "$REMOTE" "$MERGED"',
        "mergetool.nbdime.trustExitCode": "true",
        # `git nbdiff [REF [REF]] [-- PATH]` and `git nbdiff-web ...`: nbdime's own commands
        "alias.nbdiff": f"!{python} -m nbdime.nbdiffapp",
        "alias.nbdiff-web": f"!{python} -m nbdime.webapp.nbdiffweb",
    }


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args[:3])} failed: {result.stderr.strip()[:200]}")
    return result


def _write_attributes(git_dir: Path) -> None:
    path = git_dir / "info" / "attributes"
    old = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    keep = [line for line in old
            if line not in (_MARK, ATTRIBUTES) and not line.startswith(_NBSTRIPOUT_LINES)]
    while keep and not keep[-1].strip():
        keep.pop()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*keep, _MARK, ATTRIBUTES]) + "\n", encoding="utf-8")


def _configure_git(root: Path) -> None:
    # a previous `nbstripout --install`; the difftool an older `nbops setup` wrote (never reached)
    for key in ("filter.nbstripout", "diff.ipynb", "difftool.nbdime"):
        _git(root, "config", "--local", "--remove-section", key, check=False)
    for key, value in git_config(_python()).items():
        _git(root, "config", "--local", key, value)


def _install_hooks(root: Path, git_dir: Path) -> bool:
    """pre-commit's hook, with this interpreter's folder put first on PATH (its `language:
    system` hooks run nbqa, ruff, nbops and python from PATH). False without a config."""
    if not (root / ".pre-commit-config.yaml").is_file():
        return False
    result = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=root,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ConfigError(f"installing the pre-commit hooks failed: {detail[-1] if detail else result.returncode}",
                          hint="pip install pre-commit")
    hook = git_dir / "hooks" / "pre-commit"
    lines = [line for line in hook.read_text(encoding="utf-8").splitlines()
             if not line.endswith(_HOOK_PATH_LINE)]
    bin_dir = shlex.quote(str(Path(sys.executable).parent))
    lines.insert(1, f'PATH={bin_dir}:"$PATH"; export PATH  {_HOOK_PATH_LINE}')
    hook.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def setup_clone(root: Path) -> list[str]:
    """Configure the repository at `root`; returns what was done."""
    if not (root / ".git").exists():
        raise GitError(f"{root} is not a git repository", hint="run `git init` first")
    git_dir = Path(_git(root, "rev-parse", "--absolute-git-dir").stdout.strip())
    done = []
    if _install_hooks(root, git_dir):
        done.append("pre-commit hooks")
    _configure_git(root)
    _write_attributes(git_dir)
    done += ["nbdime diff driver (git diff; git nbdiff-web for the browser)",
             "notebook merge driver (nbdime's merge; conflicts always reported)",
             "nbops strip filter (nbstripout --keep-id)"]
    return done
