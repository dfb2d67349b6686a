"""`make test`'s `--dist loadgroup` keeps each test file on one pytest-xdist worker (tests/conftest.py
gives the groups): a file's module fixtures, a trained project, a server, the team's stack or a Ray
cluster, are then built once. It silently stopped twice (the conftest's marks came after xdist read
them; pytest 9.2 ignores the id xdist renames): every file was spread over both workers and built
its fixtures on each. This runs a few quick files as make test does and checks where they ran."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys

from tests.conftest import REPO

FILES = ("tests/unit/test_matrix.py", "tests/unit/test_review.py")


def test_each_file_runs_on_one_worker_as_one_group():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "-k", "not hundreds", *FILES], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*?PASSED (.+?)\s*$", done.stdout, re.M)
    assert len(ran) > 20, done.stdout[-3000:]
    workers = collections.defaultdict(set)
    for worker, nodeid in ran:
        assert "@" in nodeid, f"no xdist group: {nodeid}"
        path, _, group = nodeid.rpartition("@")
        assert group == path.split("::")[0].removeprefix("tests/"), nodeid  # the file's own group
        workers[group].add(worker)
    assert set(workers) == {f.removeprefix("tests/") for f in FILES}
    assert all(len(w) == 1 for w in workers.values()), dict(workers)
