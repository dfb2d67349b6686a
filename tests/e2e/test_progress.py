"""Progress: plain lines without a terminal, a live display on one, nothing with --quiet."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))


def two_notebooks(root: Path) -> list[str]:
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    paths = []
    for name in ("first", "second"):
        write_notebook(root / "notebooks" / f"{name}.ipynb", [
            ("code", "import time"), ("code", "time.sleep(1.5)"), ("code", "print('done')")])
        paths.append(f"notebooks/{name}.ipynb")
    return paths


def test_plain_lines_without_a_terminal(tmp_path):
    paths = two_notebooks(tmp_path)
    done = subprocess.run([NBOPS, "run", *paths, "--no-track", "--jobs", "2"], cwd=tmp_path,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "nbops: start notebooks/first.ipynb" in lines
    assert any(line.startswith("nbops: ok notebooks/second.ipynb in ") for line in lines)
    assert "\x1b[" not in done.stdout + done.stderr  # no terminal control codes in CI logs
    quiet = subprocess.run([NBOPS, "run", *paths, "--no-track", "--quiet"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and "nbops: start" not in quiet.stderr
    assert "notebooks/first.ipynb" in quiet.stdout  # the summary table is still printed


def test_live_display_on_a_terminal(tmp_path):
    paths = two_notebooks(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: nbops with a terminal on stdin, stdout and stderr
        os.chdir(tmp_path)
        os.execv(NBOPS, [NBOPS, "run", *paths, "--no-track", "--jobs", "2"])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode("utf-8", errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    # a running notebook's current cell: cell 2 sleeps 1.5 s, the display redraws 4 times a second
    assert "cell 2/3" in text, text
    assert "nbops: start" not in text  # the live display, not the plain lines
