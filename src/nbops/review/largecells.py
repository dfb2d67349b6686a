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
BUDGET = 1e8  # sum of len(a) * len(b) over the sources nbdime compares (~70 s per 1e9 measured)
NOTE = "too large for nbdime's cell diff within the time bound: line diff (difflib)"


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _lines_ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.splitlines(), b.splitlines()).quick_ratio()


def _pick_large(base: list[dict], head: list[dict]) -> tuple[set[int], set[int], list[int], list[int]]:
    """Indices of the base and head cells nbdime should not compare itself, and the indices of
    all cells without an equal source on the other side (the candidates for pairing)."""
    in_base, in_head = {_source(c) for c in base}, {_source(c) for c in head}
    a = [i for i, c in enumerate(base) if _source(c) not in in_head]
    b = [j for j, c in enumerate(head) if _source(c) not in in_base]
    big_a = {i for i in a if len(_source(base[i])) > LARGE_CELL_CHARS}
    big_b = {j for j in b if len(_source(head[j])) > LARGE_CELL_CHARS}
    # nbdime aligns cells with the same id without comparing them; the others it compares pairwise
    # (every base cell with every head cell in a gap): keep that sum of len * len under BUDGET,
    # swapping the longest first
    ids_a = {(c.get("id"), c.get("cell_type")) for c in base if c.get("id")}
    ids_b = {(c.get("id"), c.get("cell_type")) for c in head if c.get("id")}
    rest = sorted([(len(_source(base[i])), 0, i) for i in a
                   if i not in big_a and (base[i].get("id"), base[i].get("cell_type")) not in ids_b]
                  + [(len(_source(head[j])), 1, j) for j in b
                     if j not in big_b and (head[j].get("id"), head[j].get("cell_type")) not in ids_a],
                  reverse=True)
    sums = [sum(n for n, side, _ in rest if side == s) for s in (0, 1)]
    while rest and sums[0] * sums[1] > BUDGET:
        n, side, k = rest.pop(0)
        (big_a if side == 0 else big_b).add(k)
        sums[side] -= n
    return big_a, big_b, a, b


def _partner(cell: dict, i: int, n_from: int, others: list[dict], free: list[int], n_to: int) -> int | None:
    """The free cell of `others` most like CELL: the same id, else the most similar by lines
    among the 40 nearest by relative position (similarity over 0.5)."""
    same = [j for j in free if cell.get("id") and others[j].get("id") == cell.get("id")
            and others[j].get("cell_type") == cell.get("cell_type")]
    if same:
        return same[0]
    near = sorted(free, key=lambda j: abs(j / max(n_to, 1) - i / max(n_from, 1)))[:40]
    best, score, src = None, 0.5, _source(cell)
    for j in near:
        if others[j].get("cell_type") == cell.get("cell_type"):
            r = _lines_ratio(src, _source(others[j]))
            if r > score:
                best, score = j, r
    return best


def _placeholders(base: list[dict], head: list[dict], big_a: set[int], big_b: set[int],
                  cand_a: list[int], cand_b: list[int]) -> tuple[dict[int, str], dict[int, str]]:
    """Placeholder text per large cell. A large cell's partner on the other side (its likeliest
    counterpart, large or not) gets the same placeholder, so nbdime aligns the two."""
    pa: dict[int, str] = {}
    pb: dict[int, str] = {}
    free_a, free_b = [i for i in cand_a], [j for j in cand_b]

    def text(side: str, k: int, src: str) -> str:
        digest = hashlib.sha256(f"{side}{k}\0{src}".encode("utf-8", "surrogatepass")).hexdigest()
        return f"nbops-large-cell {digest}\n"

    for i in sorted(big_a):
        if i not in free_a:
            continue
        free_a.remove(i)
        pa[i] = text("a", i, _source(base[i]))
        j = _partner(base[i], i, len(base), head, free_b, len(head))
        if j is not None:
            pb[j] = pa[i]
            free_b.remove(j)
    for j in sorted(big_b):
        if j not in free_b:
            continue
        free_b.remove(j)
        pb[j] = text("b", j, _source(head[j]))
        k = _partner(head[j], j, len(head), base, free_a, len(base))
        if k is not None:
            pa[k] = pb[j]
            free_a.remove(k)
    return pa, pb


def source_diff(a: str, b: str) -> list:
    """nbdime's diff of one source string (line ops on `splitlines(keepends=True)`), by difflib."""
    from nbdime.diff_format import SequenceDiffBuilder

    x, y = a.splitlines(True), b.splitlines(True)
    di = SequenceDiffBuilder()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, x, y).get_opcodes():
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
    big_a, big_b, cand_a, cand_b = _pick_large(a, b)
    if not big_a and not big_b:
        return diff_notebooks(base, head), set(), set()
    pa, pb = _placeholders(a, b, big_a, big_b, cand_a, cand_b)
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
