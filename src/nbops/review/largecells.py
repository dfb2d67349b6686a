"""nbdime's notebook diff in bounded time: large changed cells get a line diff (difflib) instead.

nbdime aligns cells by comparing their sources with `difflib.SequenceMatcher(...).ratio()` over
characters, which is quadratic: a 300-line cell takes seconds, a 30,000-line cell with one changed
line runs for many minutes (nbdime's own `nbdiff` too). Only sources that differ cost anything
(equal strings short-cut), so before nbdime sees the notebooks each large source that has no
equal on the other side is swapped for a short placeholder: paired large cells (same type, similar
by a line-level comparison, which is fast) share one placeholder, so nbdime aligns them; then the
real sources go back and each such cell's `source` diff is made by difflib over lines, in nbdime's
own diff format (so the web app shows it, and `nbdime.patch` applies it).
"""

from __future__ import annotations

import difflib
import hashlib

LARGE_CELL_CHARS = 3_000  # one ratio() at this size costs ~0.1-0.5 s
BUDGET = 1.5e8  # sum of len(a) * len(b) nbdime may spend on changed sources (a few seconds)
NOTE = "too large for nbdime's cell diff within the time bound: line diff (difflib)"


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _lines_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.splitlines(), b.splitlines()).quick_ratio()


def _pick_large(base: list[dict], head: list[dict]) -> tuple[set[int], set[int]]:
    """Indices of the base and head cells nbdime should not compare itself."""
    in_base, in_head = {_source(c) for c in base}, {_source(c) for c in head}
    a = [(i, len(_source(c))) for i, c in enumerate(base) if _source(c) not in in_head]
    b = [(j, len(_source(c))) for j, c in enumerate(head) if _source(c) not in in_base]
    big_a = {i for i, n in a if n > LARGE_CELL_CHARS}
    big_b = {j for j, n in b if n > LARGE_CELL_CHARS}
    # the rest: nbdime compares unmatched sources pairwise; keep the worst case under BUDGET
    rest_a = sorted(((n, i) for i, n in a if i not in big_a), reverse=True)
    rest_b = sorted(((n, j) for j, n in b if j not in big_b), reverse=True)
    cost = sum(n for n, _ in rest_a) * (max((n for n, _ in rest_b), default=0))
    while cost > BUDGET and (rest_a or rest_b):
        if rest_a and (not rest_b or rest_a[0][0] >= rest_b[0][0]):
            big_a.add(rest_a.pop(0)[1])
        else:
            big_b.add(rest_b.pop(0)[1])
        cost = sum(n for n, _ in rest_a) * (max((n for n, _ in rest_b), default=0))
    return big_a, big_b


def _placeholders(base: list[dict], head: list[dict], big_a: set[int], big_b: set[int]
                  ) -> tuple[dict[int, str], dict[int, str]]:
    """Placeholder text per large cell; a base and a head cell that look alike share one."""
    pa: dict[int, str] = {}
    pb: dict[int, str] = {}
    free = sorted(big_b)
    for i in sorted(big_a):
        src = _source(base[i])
        best, score = None, 0.5
        for j in free:
            if head[j].get("cell_type") == base[i].get("cell_type"):
                r = _lines_ratio(src, _source(head[j]))
                if r > score:
                    best, score = j, r
        digest = hashlib.sha256(f"base{i}\0{src}".encode("utf-8", "surrogatepass")).hexdigest()
        pa[i] = f"nbops-large-cell {digest}\n"
        if best is not None:
            pb[best] = pa[i]
            free.remove(best)
    for j in free:
        src = _source(head[j])
        pb[j] = f"nbops-large-cell {hashlib.sha256(f'head{j}{chr(0)}{src}'.encode('utf-8', 'surrogatepass')).hexdigest()}\n"
    return pa, pb


def source_diff(a: str, b: str) -> list:
    """nbdime's diff of one source string (line ops on `splitlines(keepends=True)`), by difflib."""
    from nbdime.diff_format import SequenceDiffBuilder

    x, y = a.splitlines(True), b.splitlines(True)
    di = SequenceDiffBuilder()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, x, y, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            di.removerange(i1, i2 - i1)
        if tag in ("insert", "replace"):
            di.addrange(i1, y[j1:j2])
    return di.validated()


def _op_key(op: dict) -> tuple:
    return op["key"], 0 if op["op"] == "addrange" else 1


def diff_notebooks_bounded(base: dict, head: dict) -> tuple[list, set[int], set[int]]:
    """nbdime's diff of BASE and HEAD, and the 1-based base and head cells diffed by lines."""
    from nbdime import diff_notebooks

    a, b = base.get("cells", []), head.get("cells", [])
    big_a, big_b = _pick_large(a, b)
    if not big_a and not big_b:
        return diff_notebooks(base, head), set(), set()
    pa, pb = _placeholders(a, b, big_a, big_b)
    swap_a = [dict(c, source=pa[i]) if i in pa else c for i, c in enumerate(a)]
    swap_b = [dict(c, source=pb[j]) if j in pb else c for j, c in enumerate(b)]
    diff = diff_notebooks(dict(base, cells=swap_a), dict(head, cells=swap_b))
    top = next((d for d in diff if d["key"] == "cells"), None)
    if top is None:
        top = {"op": "patch", "key": "cells", "diff": []}
        diff.append(top)
    ops: list = top["diff"]
    adds: dict[int, int] = {}
    removed: set[int] = set()
    patched: dict[int, dict] = {}
    for op in ops:
        if op["op"] == "addrange":
            adds[op["key"]] = adds.get(op["key"], 0) + len(op["valuelist"])
        elif op["op"] == "removerange":
            removed |= set(range(op["key"], op["key"] + op["length"]))
        elif op["op"] == "patch":
            patched[op["key"]] = op
    # walk the base cells: cells added at key i come before base cell i; real sources go back
    j = 0
    for i in range(len(a) + 1):
        if i in adds:
            op = next(o for o in ops if o["op"] == "addrange" and o["key"] == i)
            op["valuelist"] = b[j:j + adds[i]]
            j += adds[i]
        if i == len(a) or i in removed:
            continue
        if i in pa or j in pb:
            _set_source_diff(ops, patched.get(i), i, source_diff(_source(a[i]), _source(b[j])))
        j += 1
    ops.sort(key=_op_key)
    if not ops:
        diff.remove(top)
    return diff, {i + 1 for i in pa}, {j + 1 for j in pb}


def _set_source_diff(ops: list, op: dict | None, key: int, sdiff: list) -> None:
    if op is None:
        if not sdiff:
            return
        op = {"op": "patch", "key": key, "diff": []}
        ops.append(op)
    rest = [d for d in op["diff"] if d["key"] != "source"]
    if sdiff:
        rest.append({"op": "patch", "key": "source", "diff": sdiff})
    op["diff"] = sorted(rest, key=lambda d: d["key"])
    if not op["diff"]:
        ops.remove(op)
