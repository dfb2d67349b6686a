"""core/files.py's `replacing`, the one way nbops writes a file whole or not at all (issue 24:
four helpers disagreed on the mode they left)."""

from __future__ import annotations

import os
import stat

import pytest

from nbops.core.files import replacing, temp_beside, umask, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_a_normal_files_mode_as_the_umask_says(tmp_path):
    old = os.umask(0o027)
    try:
        assert umask() == 0o027
        write_text_atomic(tmp_path / "sub" / "new.txt", "x")
        assert _mode(tmp_path / "sub" / "new.txt") == 0o640  # 0666 & ~027, not mkstemp's 0600
    finally:
        os.umask(old)


def test_a_rewritten_file_keeps_its_own_mode(tmp_path):
    target = tmp_path / "nb.ipynb"
    target.write_text("old")
    target.chmod(0o604)
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o604


def test_an_error_leaves_the_target_untouched_and_no_temp_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), replacing(target) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_temp_beside_is_in_the_same_folder_with_the_final_mode(tmp_path):
    target = tmp_path / "out.csv"
    tmp = temp_beside(target)
    try:
        assert os.path.dirname(tmp) == str(tmp_path)  # one rename, never across filesystems
        assert _mode(tmp_path / os.path.basename(tmp)) == 0o666 & ~umask()
    finally:
        os.unlink(tmp)
