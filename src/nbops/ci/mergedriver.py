"""git's merge driver for notebooks, as `nbops setup` installs it: nbdime's merge, never a silent "ours".

git runs `python -m nbops.ci.mergedriver %O %A %B %L %P` (base, ours, theirs, the conflict
marker size, the path) and takes what the driver leaves in %A, with the exit status saying
whether it merged cleanly (0) or left conflicts (non-zero: git marks the path unmerged):

- nbdime merges the notebooks without a conflict: the merged notebook, exit 0;
- nbdime finds conflicts: its merge with its own conflict marks (nbdime's inline strategy, as
  its driver writes it: marker cells around both sides' cells, `<<<<<<<` lines in a source,
  `nbdime-conflicts` in metadata), exit 1;
- nbdime raises: git's text merge of the JSON (`git merge-file`: conflict markers in %A), exit 1
  on a conflict, and also when a clean text merge is not JSON.

Why a driver of ours: nbdime 4.0's driver (`nbdime.vcs.git.mergedriver`) crashed on the
commonest notebook merge, both branches appending a cell. Its inline strategy folds two inserted
cells it finds similar into one cell whose id is `{"local_id": ..., "remote_id": ...}`;
`nbformat.write` then raises `TypeError: unhashable type: 'NotebookNode'` before opening the
output, the driver exits 1 and %A is still byte for byte "ours": git shows a conflict without a
single marker, and `git add` drops the other branch's cells. Here such an insertion is laid out
as nbdime lays out dissimilar ones (`_keep_both_inserts`), and any other crash ends in git's
text merge, so each side's work is always in the file.

Importing this module is cheap (nbdime and nbformat load inside `merge`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from nbops.core.files import write_text_atomic


def _nbdime_args() -> Any:
    """nbdime's merge options as its own git driver reads them (the user's nbdime config for
    `git-nbmergedriver` included): the inline strategy unless configured otherwise."""
    from nbdime.args import (
        ConfigBackedParser,
        add_diff_args,
        add_generic_args,
        add_merge_args,
        process_diff_flags,
    )

    parser = ConfigBackedParser("git-nbmergedriver")
    add_generic_args(parser)
    add_diff_args(parser)
    add_merge_args(parser)
    args = parser.parse_args([])
    process_diff_flags(args)
    return args


def _folded(cells: list) -> bool:
    """Whether CELLS hold a cell folded from two (an id or metadata that is local's and remote's)."""
    return any(not isinstance(c.get("id", ""), str) or "local_metadata" in (c.get("metadata") or {})
               for c in cells if isinstance(c, dict))


def _keep_both_inserts(base: Any, decisions: list) -> None:
    """Replace each conflicted insertion that nbdime folded into one cell with both sides' cells
    whole, ours first, between nbdime's marker cells (`<<<<<<< local`, `=======`,
    `>>>>>>> remote`): what nbdime itself writes for inserted cells it finds dissimilar."""
    from nbdime.diff_format import op_addrange
    from nbdime.merging.strategies import make_inline_cell_conflict

    for d in decisions:
        if not (d.conflict and d.action == "custom" and tuple(d.common_path) == ("cells",)):
            continue
        custom = d.get("custom_diff") or []
        if any(op.op == "addrange" and _folded(op.valuelist) for op in custom):
            cells = make_inline_cell_conflict(base.cells, d.local_diff, d.remote_diff)
            d.custom_diff = [op_addrange(d.local_diff[0].key, cells), *custom[1:]]


def merge(base: Path, ours: Path, theirs: Path) -> tuple[str, int]:
    """nbdime's three-way merge: (the merged notebook's text, the number of conflicts).
    Raises whatever nbdime or nbformat raise on notebooks they cannot merge or write."""
    import nbformat
    from nbdime.merging import apply_decisions
    from nbdime.merging.notebooks import decide_notebook_merge
    from nbdime.utils import read_notebook

    b = read_notebook(str(base), on_null="minimal", on_empty="minimal")  # empty: both added the file
    local = read_notebook(str(ours), on_null="minimal")
    remote = read_notebook(str(theirs), on_null="minimal")
    decisions = decide_notebook_merge(b, local, remote, _nbdime_args())
    _keep_both_inserts(b, decisions)
    merged = apply_decisions(b, decisions)
    text = nbformat.writes(merged)  # validates: raises rather than write a notebook nbformat refuses
    return text + "\n", sum(1 for d in decisions if d.conflict)


def text_merge(base: Path, ours: Path, theirs: Path, marker_size: int) -> int:
    """git's line merge of the JSON into OURS: the number of conflicts; 1 when a clean merge
    is no JSON (two edits side by side can lose a comma); -1 when git merge-file failed."""
    done = subprocess.run(
        ["git", "merge-file", f"--marker-size={marker_size}", "-L", "ours", "-L", "base", "-L", "theirs",
         str(ours), str(base), str(theirs)],
        capture_output=True, text=True, check=False)
    if done.returncode < 0 or done.returncode > 127:
        print(f"git merge-file failed: {done.stderr.strip()[:300]}", file=sys.stderr)
        return -1
    if done.returncode == 0:
        try:
            json.loads(ours.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 1
    return done.returncode


def _write(path: Path, text: str) -> None:
    """Replace PATH's content at once (git reads it after the driver exits), keeping its mode."""
    write_text_atomic(path, text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: python -m nbops.ci.mergedriver BASE OURS THEIRS [MARKER_SIZE [PATH]]", file=sys.stderr)
        return 2
    base, ours, theirs = (Path(a) for a in args[:3])
    marker_size = int(args[3]) if len(args) > 3 and args[3].isdigit() else 7
    name = args[4] if len(args) > 4 else str(ours)
    try:
        text, conflicts = merge(base, ours, theirs)
    except Exception as exc:  # noqa: BLE001 - any failure of nbdime's: git's text merge instead
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        conflicts = text_merge(base, ours, theirs, marker_size)
        if conflicts < 0:
            print(f"{name}: not merged (nbdime: {reason}); the file is ours, merge it by hand", file=sys.stderr)
            return 2
        if conflicts:
            print(f"{name}: nbdime could not merge it ({reason}); git's text merge left "
                  "conflict markers in the JSON", file=sys.stderr)
        return 1 if conflicts else 0
    _write(ours, text)
    if conflicts:
        print(f"{name}: {conflicts} notebook conflict(s), both sides kept: nbdime's marker cells, "
              "<<<<<<< lines in sources, nbdime-conflicts in metadata (or `git mergetool -t nbdime`)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # `import nbops` (this package's) has deferred rfc3987-syntax's parser: see _deferred_rfc3987
    sys.exit(main())
