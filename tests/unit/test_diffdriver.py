"""ci/diffdriver.py: git's colour options, read from the git command line that runs the driver."""

from __future__ import annotations

import pytest

from nbops.ci.diffdriver import color_flag


@pytest.mark.parametrize(("args", "said"), [
    (["diff"], None),
    (["diff", "--no-color"], False),
    (["diff", "--color=never", "HEAD"], False),
    (["diff", "--color"], True),
    (["log", "-p", "--color=always"], True),
    (["diff", "--color", "--no-color"], False),  # the last one wins, as in git
    (["diff", "--color=auto"], None),
    (["diff", "--", "--no-color"], None),  # a path, not an option
])
def test_color_flag(args, said):
    assert color_flag(args) is said
