"""`nbops review`: what a pull request did to its notebooks, for a reviewer.

For each notebook that differs between two git refs: its changed cells (matched by nbdime, large
cells by lines: review/largecells.py), parameter changes `name: old -> new`, what changed in how
it is judged (gates, resources, kernel, data: review/judged.py) and the outputs committed at head;
review.md (review/markdown.py) and HTML pages sharing one copy of nbdime's web
app, with an index.html (review/htmlpage.py, review/pages.py). Outputs, execution counts and
volatile metadata are left out of the diffs.
"""

from __future__ import annotations

import copy
import difflib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from nbops.core.errors import NotebookError, ReviewError
from nbops.core.files import writable_dir
from nbops.notebook.document import PARAMETERS_TAG, cell_source, parse_parameters
from nbops.review.judged import Judged, judged_changes


@dataclass(frozen=True)
class NotebookChange:
    status: str  # added, deleted, modified, renamed
    path: str  # the head path (the base path for a deleted notebook)
    old_path: str | None = None
    base: dict | None = None
    head: dict | None = None
    error: str | None = None


@dataclass(frozen=True)
class CellChange:
    kind: str  # added, removed, modified
    base_cell: int | None  # 1-based
    head_cell: int | None
    cell_type: str
    diff: str  # unified diff lines of the source, without headers
    note: str | None = None  # e.g. diffed by lines because too large for nbdime


@dataclass(frozen=True)
class NotebookReview:
    change: NotebookChange
    cells: list[CellChange] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # "name: old -> new"
    html: str | None = None  # file name of the HTML page in the output folder
    outputs: list[str] = field(default_factory=list)  # committed outputs at head, "cell 3: stdout"
    judged: list[Judged] = field(default_factory=list)  # gates, resources, kernel...: review/judged.py

    def risks(self) -> list[Judged]:
        return [j for j in self.judged if j.risk]

    def counts(self) -> dict[str, int]:
        return {k: sum(c.kind == k for c in self.cells) for k in ("added", "removed", "modified")}


def git_output(root: Path, *args: str) -> str:
    """stdout of a git command; a failure is a ReviewError naming the ref to fetch."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ReviewError(f"git {' '.join(args[:2])} failed: {last}",
                          hint="is the ref fetched? (e.g. git fetch origin main)")
    return done.stdout


def _read_at(root: Path, ref: str, path: str) -> dict:
    """A notebook as nbformat v4 (sources joined, older minor versions upgraded) at a git ref."""
    import nbformat

    done = subprocess.run(["git", "show", f"{ref}:./{path}"], cwd=root, capture_output=True, check=False)
    if done.returncode != 0:  # not an empty notebook: the review would show every cell as added
        last = (done.stderr.decode("utf-8", errors="replace").strip().splitlines() or ["no message"])[-1]
        raise ReviewError(f"{path} at {ref}: git show failed: {last}",
                          hint="is the ref fetched? (e.g. git fetch origin main)")
    text = done.stdout.decode("utf-8", errors="replace")
    if not text.strip():
        return nbformat.v4.new_notebook()  # an empty file: reviewed as an empty notebook
    try:
        # an invalid-but-readable notebook is still reviewed; keep nbformat from logging it
        nb = nbformat.reads(text, as_version=4, capture_validation_error={})
    except Exception as exc:  # noqa: BLE001 - nbformat raises several kinds for bad input
        raise NotebookError(f"{path} at {ref}: not a readable notebook ({type(exc).__name__})") from None
    return json.loads(json.dumps(nb))


RENAME_SIMILARITY = 0.5  # of the cells' sources, like git's -M50% but blind to JSON boilerplate


def changed_notebooks(root: Path, base: str, head: str) -> list[NotebookChange]:
    """Each notebook added, deleted, modified or renamed from BASE to HEAD. Renames are paired
    here, not by git: git's similarity counts the JSON every notebook shares, so at its 50% it
    paired unrelated notebooks, and at 90% a renamed notebook with edited cells read as a delete
    and an add (issue 23). Here a deleted and an added notebook are one rename when their cells'
    sources are at least RENAME_SIMILARITY alike (most alike first)."""
    out = git_output(root, "diff", "--name-status", "--no-renames", "--relative", "-z", base, head,
                     "--", "*.ipynb")
    fields = out.split("\0")
    changes = []
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if not status:
            break
        kind = {"A": "added", "D": "deleted"}.get(status[0], "modified")
        try:
            base_nb = None if kind == "added" else _read_at(root, base, path)
            head_nb = None if kind == "deleted" else _read_at(root, head, path)
            changes.append(NotebookChange(kind, path, None, base_nb, head_nb))
        except NotebookError as exc:
            changes.append(NotebookChange(kind, path, error=exc.message))
    return _pair_renames(changes)


def _sources(nb: dict | None) -> list[str]:
    return [line for cell in (nb or {}).get("cells", []) for line in cell_source(cell).splitlines()]


def _pair_renames(changes: list[NotebookChange]) -> list[NotebookChange]:
    deleted = [c for c in changes if c.status == "deleted" and not c.error]
    added = [c for c in changes if c.status == "added" and not c.error]
    if not deleted or not added or len(deleted) * len(added) > 2_500:  # bounded time
        return changes
    scores = []
    for d in deleted:
        for a in added:
            matcher = difflib.SequenceMatcher(None, _sources(d.base), _sources(a.head), autojunk=False)
            if matcher.real_quick_ratio() >= RENAME_SIMILARITY and matcher.quick_ratio() >= RENAME_SIMILARITY:
                scores.append((matcher.ratio(), d.path, a.path, d, a))
    renamed: dict[str, NotebookChange] = {}  # head path -> the rename; its base path is dropped
    gone: set[str] = set()
    for ratio, old, new, d, a in sorted(scores, key=lambda s: (-s[0], s[1], s[2])):
        if ratio >= RENAME_SIMILARITY and old not in gone and new not in renamed:
            renamed[new] = NotebookChange("renamed", new, old, d.base, a.head)
            gone.add(old)
    return [renamed.get(c.path, c) for c in changes
            if not (c.status == "deleted" and c.path in gone)]


def strip_for_review(nb: dict | None) -> dict:
    """Sources only: no outputs, counts or volatile metadata (ids, tags and metadata.nbops stay)."""
    import nbformat

    if nb is None:
        return json.loads(json.dumps(nbformat.v4.new_notebook()))
    nb = copy.deepcopy(nb)
    for cell in nb.get("cells", []):
        tags = (cell.get("metadata") or {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.pop("attachments", None)
    keep = {k: v for k, v in nb.get("metadata", {}).items() if k in ("nbops", "kernelspec")}
    nb["metadata"] = keep
    return nb


def _unified(a: str, b: str) -> str:
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=2)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


def committed_outputs(nb: dict | None) -> list[str]:
    """One line per code cell that has outputs: "cell 3: stdout, image/png"."""
    found = []
    for n, cell in enumerate((nb or {}).get("cells", []), 1):
        kinds: list[str] = []
        for out in cell.get("outputs") or [] if cell.get("cell_type") == "code" else []:
            if not isinstance(out, dict):
                continue
            kind = out.get("output_type")
            if kind == "stream":
                names = [str(out.get("name", "stream"))]
            elif kind == "error":
                names = [f"error {out.get('ename', '')}".strip()]
            else:
                names = [str(m) for m in (out.get("data") or {})] or [str(kind)]
            kinds += [k for k in names if k not in kinds]
        if kinds:
            found.append(f"cell {n}: {', '.join(kinds)}")
    return found


def cell_changes(base: dict, head: dict, diff: list | None = None,
                 by_lines: tuple[set[int], set[int]] = (set(), set())) -> list[CellChange]:
    """Cells added, removed and modified, matched by nbdime's notebook diff (given or computed).
    `by_lines`: the 1-based base and head cells whose diff was made by lines (largecells.py)."""
    if diff is None:
        from nbops.review.largecells import diff_notebooks_bounded

        diff, *lined = diff_notebooks_bounded(base, head)
        by_lines = (lined[0], lined[1])
    from nbops.review.largecells import NOTE

    def note(i: int | None, j: int | None) -> str | None:
        return NOTE if (i in by_lines[0] or j in by_lines[1]) else None

    a, b = base["cells"], head["cells"]
    ops: list = next((d["diff"] for d in diff if d["key"] == "cells"), [])
    changes: list[CellChange] = []
    offset = 0  # head index = base index + offset, updated as ops are applied in order
    for op in sorted(ops, key=lambda o: (o["key"], o["op"] != "addrange")):
        key = op["key"]
        if op["op"] == "addrange":
            for j, cell in enumerate(op["valuelist"]):
                changes.append(CellChange("added", None, key + offset + j + 1, cell["cell_type"],
                                          _unified("", cell_source(cell)), note(None, key + offset + j + 1)))
            offset += len(op["valuelist"])
        elif op["op"] == "removerange":
            for j in range(op["length"]):
                cell = a[key + j]
                changes.append(CellChange("removed", key + j + 1, None, cell["cell_type"],
                                          _unified(cell_source(cell), ""), note(key + j + 1, None)))
            offset -= op["length"]
        elif op["op"] == "patch":
            old, new = a[key], b[key + offset]
            if cell_source(old) != cell_source(new) or old["cell_type"] != new["cell_type"]:
                changes.append(CellChange("modified", key + 1, key + offset + 1, new["cell_type"],
                                          _unified(cell_source(old), cell_source(new)),
                                          note(key + 1, key + offset + 1)))
    return changes


def _parameters(nb: dict) -> dict[str, str]:
    for cell in nb.get("cells", []):
        if PARAMETERS_TAG in ((cell.get("metadata") or {}).get("tags") or []):
            try:
                params = parse_parameters(cell_source(cell))
            except NotebookError:
                return {}
            return {p.name: (p.default if p.type == "expr" else repr(p.default)) for p in params}
    return {}


def parameter_changes(base: dict, head: dict) -> list[str]:
    old, new = _parameters(base), _parameters(head)
    out = []
    for name in list(old) + [n for n in new if n not in old]:
        if name not in new:
            out.append(f"{name}: {old[name]} -> (removed)")
        elif name not in old:
            out.append(f"{name}: (new) -> {new[name]}")
        elif old[name] != new[name]:
            out.append(f"{name}: {old[name]} -> {new[name]}")
    return out


def review_notebook(change: NotebookChange, out: Path | None = None, base_ref: str = "base",
                    head_ref: str = "head", app: str | None = None) -> NotebookReview:
    """The review of one notebook; with `out`, also its HTML page there (one diff for both), which
    loads nbdime's web app from the file `app` next to it (inlined when None)."""
    from nbops.review.largecells import diff_notebooks_bounded

    base, head = strip_for_review(change.base), strip_for_review(change.head)
    diff, lined_base, lined_head = diff_notebooks_bounded(base, head)
    outputs = committed_outputs(change.head)
    cells = cell_changes(base, head, diff, (lined_base, lined_head))
    parameters = parameter_changes(base, head)
    # a deleted notebook judges nothing any more: its cells' diff says all there is
    judged = judged_changes(change.base, change.head, parameters) if change.head is not None else []
    name = None
    if out is not None:
        from nbops.review.htmlpage import render_diff_page

        name = html_name(change.path)
        page = render_diff_page(
            base, head,
            f"{change.old_path or change.path} @ {base_ref}" if change.base is not None else "(new notebook)",
            f"{change.path} @ {head_ref}" if change.head is not None else "(deleted)",
            f"nbops review: {change.path}", diff=diff, app=app, outputs=outputs,
            changes=[(cell_label(c), c.diff or "(source unchanged)") for c in cells],
            judged=[str(j) for j in judged],
        )
        _write_text(out / name, page)
    return NotebookReview(change, cells, parameters, name, outputs, judged)


def cell_label(cell: CellChange) -> str:
    """"cell 3, code, modified" (the head's number; the base's for a removed cell)."""
    where = f"cell {cell.head_cell}" if cell.head_cell else f"cell {cell.base_cell} (base)"
    return f"{where}, {cell.cell_type}, {cell.kind}" + (f" ({cell.note})" if cell.note else "")


def html_name(path: str) -> str:
    return path.replace("/", "__") + ".html"


def write_review(root: Path, base: str, head: str, out: Path,
                 results=None) -> tuple[Path, list[NotebookReview]]:
    """Write review.md and one HTML page per notebook. `results(reviews)`, when given, returns
    markdown lines per notebook path (the metrics of `--run`)."""
    writable_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    from nbops.review.markdown import render_markdown
    from nbops.review.pages import render_index, write_app

    changes = changed_notebooks(root, base, head)
    app = write_app(out) if any(not c.error for c in changes) else None
    reviews = [NotebookReview(change) if change.error else review_notebook(change, out, base, head, app)
               for change in changes]
    md = out / "review.md"
    tables = results(reviews) if results else None
    _write_text(out / "index.html", render_index(reviews, base, head))
    from nbops.review.pipelines import graph_block

    _write_text(md, render_markdown(reviews, base, head, tables, graph=graph_block(root, reviews)))
    return md, reviews


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    # a lone surrogate (a notebook may hold "\\ud800") is written as that escape, never as bad UTF-8
    tmp.write_text(text.encode("utf-8", "backslashreplace").decode("utf-8"), encoding="utf-8")
    tmp.replace(path)
