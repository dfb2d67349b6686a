"""The notebook diff driver `nbops setup` installs: nbdime's, with git's colour choice honoured.

git runs a diff driver's command with the two files and says nothing about colour, and nbdime's
driver colours always, so `git diff --no-color`, `git diff > file` and `color.ui = never` all
got ANSI escapes (issue 23). Here the choice is git's own: a `--color[=WHEN]` / `--no-color`
given to the git command that runs this driver (its command line, read from the process table),
else `git config --get-colorbool color.diff` for where the output goes (a terminal, or git's
pager, which git marks with GIT_PAGER_IN_USE). Without colour, nbdime's driver gets `--no-color`.

Usage (as git's diff.<driver>.command): python -m nbops.ci.diffdriver [nbdime options] PATH
OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_ANCESTORS = 4  # git -> (sh -c) -> this driver: a few levels up at most


def _parent_and_args(pid: int) -> tuple[int, list[str]]:
    """The parent pid and argv of process PID (Linux's /proc; elsewhere ps)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        args = (proc / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        return parent, [a for a in args if a]
    done = subprocess.run(["ps", "-o", "ppid=", "-o", "args=", "-p", str(pid)], capture_output=True,
                          text=True, check=False)
    fields = done.stdout.split()
    return (int(fields[0]), fields[1:]) if fields and fields[0].isdigit() else (0, [])


def color_flag(args: list[str]) -> bool | None:
    """What git's own options in ARGS say about colour (the last one wins), None if nothing."""
    said = None
    for arg in args:
        if arg == "--":
            break
        if arg in ("--no-color", "--color=never"):
            said = False
        elif arg in ("--color", "--color=always"):
            said = True
        elif arg == "--color=auto":
            said = None
    return said


def _git_args() -> list[str]:
    """The command line of the git process that runs this driver ([] when not found)."""
    pid = os.getppid()
    for _ in range(_ANCESTORS):
        try:
            parent, args = _parent_and_args(pid)
        except (OSError, ValueError, IndexError):
            return []
        if args and Path(args[0]).name in ("git", "git.exe"):
            return args
        if parent <= 1:
            return []
        pid = parent
    return []


def wants_color() -> bool:
    said = color_flag(_git_args()[1:])
    if said is not None:
        return said
    to_terminal = sys.stdout.isatty() or os.environ.get("GIT_PAGER_IN_USE", "").lower() in ("true", "1")
    done = subprocess.run(["git", "config", "--get-colorbool", "color.diff", "true" if to_terminal else "false"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() == "true"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--no-color" not in args and not wants_color():
        args.insert(0, "--no-color")
    from nbdime.vcs.git.diffdriver import main as nbdime_main

    return nbdime_main(["diff", *args]) or 0


if __name__ == "__main__":
    sys.exit(main())
