"""`nbops review`: what a pull request did to its notebooks, for a reviewer.

For each notebook that differs between two git refs: a markdown section (summary line, parameter
changes `name: old -> new`, a ```diff block per changed cell; outputs, execution counts and
volatile metadata left out) and a self-contained HTML page with nbdime's side-by-side diff.
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

MAX_COMMENT = 60_000
COMMENT_MARKER = "<!-- nbops-review -->"  # CI finds its earlier comment by it and updates it


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


@dataclass(frozen=True)
class NotebookReview:
    change: NotebookChange
    cells: list[CellChange] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)  # "name: old -> new"
    html: str | None = None  # file name of the HTML page in the output folder

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


def changed_notebooks(root: Path, base: str, head: str) -> list[NotebookChange]:
    # notebooks share much JSON boilerplate, so git's default 50% similarity pairs unrelated
    # added and deleted notebooks as renames; only near-identical content counts here
    out = git_output(root, "diff", "--name-status", "--find-renames=90%", "--relative", "-z", base, head,
                     "--", "*.ipynb")
    fields = out.split("\0")
    changes = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        if status.startswith("R") or status.startswith("C"):
            old, new = fields[i + 1], fields[i + 2]
            i += 3
        else:
            old = new = fields[i + 1]
            i += 2
        kind = {"A": "added", "D": "deleted", "R": "renamed", "C": "added"}.get(status[0], "modified")
        try:
            base_nb = None if kind == "added" else _read_at(root, base, old)
            head_nb = None if kind == "deleted" else _read_at(root, head, new)
            changes.append(NotebookChange(kind, new, old if kind == "renamed" else None, base_nb, head_nb))
        except NotebookError as exc:
            changes.append(NotebookChange(kind, new, old if kind == "renamed" else None, error=exc.message))
    return changes


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


def cell_changes(base: dict, head: dict, diff: list | None = None) -> list[CellChange]:
    """Cells added, removed and modified, matched by nbdime's notebook diff (given or computed)."""
    if diff is None:
        from nbdime import diff_notebooks

        diff = diff_notebooks(base, head)
    a, b = base["cells"], head["cells"]
    ops: list = next((d["diff"] for d in diff if d["key"] == "cells"), [])
    changes: list[CellChange] = []
    offset = 0  # head index = base index + offset, updated as ops are applied in order
    for op in sorted(ops, key=lambda o: (o["key"], o["op"] != "addrange")):
        key = op["key"]
        if op["op"] == "addrange":
            for j, cell in enumerate(op["valuelist"]):
                changes.append(CellChange("added", None, key + offset + j + 1, cell["cell_type"],
                                          _unified("", cell_source(cell))))
            offset += len(op["valuelist"])
        elif op["op"] == "removerange":
            for j in range(op["length"]):
                cell = a[key + j]
                changes.append(CellChange("removed", key + j + 1, None, cell["cell_type"],
                                          _unified(cell_source(cell), "")))
            offset -= op["length"]
        elif op["op"] == "patch":
            old, new = a[key], b[key + offset]
            if cell_source(old) != cell_source(new) or old["cell_type"] != new["cell_type"]:
                changes.append(CellChange("modified", key + 1, key + offset + 1, new["cell_type"],
                                          _unified(cell_source(old), cell_source(new))))
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
                    head_ref: str = "head") -> NotebookReview:
    """The review of one notebook; with `out`, also its HTML page there (one nbdime diff for both)."""
    from nbdime import diff_notebooks

    base, head = strip_for_review(change.base), strip_for_review(change.head)
    diff = diff_notebooks(base, head)
    name = None
    if out is not None:
        from nbops.review.htmlpage import render_diff_page

        name = html_name(change.path)
        page = render_diff_page(
            base, head,
            f"{change.old_path or change.path} @ {base_ref}" if change.base is not None else "(new notebook)",
            f"{change.path} @ {head_ref}" if change.head is not None else "(deleted)",
            f"nbops review: {change.path}", diff=diff,
        )
        _write_text(out / name, page)
    return NotebookReview(change, cell_changes(base, head, diff), parameter_changes(base, head), name)


def html_name(path: str) -> str:
    return path.replace("/", "__") + ".html"


def render_markdown(reviews: list[NotebookReview], base: str, head: str, results: dict | None = None,
                    limit: int = MAX_COMMENT) -> str:
    lines = [COMMENT_MARKER, f"## nbops review: {len(reviews)} notebook(s) changed (`{base}` → `{head}`)", ""]
    for r in reviews:
        c = r.change
        title = f"`{c.old_path}` → `{c.path}`" if c.old_path else f"`{c.path}`"
        lines.append(f"### {title} ({c.status})")
        if c.error:
            lines += [f"**Could not review:** {c.error}", ""]
            continue
        n = r.counts()
        summary = f"{n['added']} cell(s) added, {n['removed']} removed, {n['modified']} modified"
        if r.parameters:
            summary += "; parameters: " + ", ".join(f"`{p}`" for p in r.parameters)
        lines.append(summary)
        if r.html:
            lines.append(f"Side-by-side diff: `{r.html}` (in the review's HTML artifact)")
        lines.append("")
        if results and c.path in results:
            lines += results[c.path] + [""]
        for cell in r.cells:
            where = f"cell {cell.head_cell}" if cell.head_cell else f"cell {cell.base_cell} (base)"
            lines.append(f"**{where}, {cell.cell_type}, {cell.kind}**")
            lines += ["```diff", cell.diff or "(source unchanged)", "```", ""]
    text = "\n".join(lines)
    if len(text) > limit:
        cut = text[: limit - 300].rsplit("\n", 1)[0]
        if cut.count("```") % 2:
            cut += "\n```"
        text = cut + "\n\n… cut here: the comment is too long. The full diff is in the HTML pages.\n"
    return text


def write_review(root: Path, base: str, head: str, out: Path,
                 results=None) -> tuple[Path, list[NotebookReview]]:
    """Write review.md and one HTML page per notebook. `results(reviews)`, when given, returns
    markdown lines per notebook path (the metrics of `--run`)."""
    writable_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    reviews = [NotebookReview(change) if change.error else review_notebook(change, out, base, head)
               for change in changed_notebooks(root, base, head)]
    md = out / "review.md"
    tables = results(reviews) if results else None
    _write_text(md, render_markdown(reviews, base, head, tables))
    return md, reviews


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
