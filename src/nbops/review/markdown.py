"""review.md: the pull request comment. CommonMark whatever the notebooks contain.

Order: committed outputs per notebook, then every changed notebook with its summary line (always
all of them), then `--run`'s results, then cell diffs while the size budget lasts, and last what
was left out. Each diff is in a fence longer than any backtick run in it, so no cell closes it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbops.review.changes import NotebookReview

MAX_COMMENT = 60_000  # GitHub's limit is 65,536 characters
COMMENT_MARKER = "<!-- nbops-review -->"  # CI finds its earlier comment by it and updates it
_RESERVE = 2_500  # kept for the note saying what was left out
_TICKS = re.compile("`+")


def code(text: str) -> str:
    """TEXT as an inline code span, whatever backticks or line breaks it holds."""
    text = " ".join(str(text).splitlines()) or " "
    run = max((len(m) for m in _TICKS.findall(text)), default=0)
    ticks = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or text.startswith(" ") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(body: str, info: str = "diff") -> str:
    """BODY in a fenced block whose backtick fence is longer than any backtick run in it."""
    ticks = "`" * max(3, max((len(m) for m in _TICKS.findall(body)), default=0) + 1)
    return f"{ticks}{info}\n{body}\n{ticks}"


def _title(r: NotebookReview) -> str:
    c = r.change
    return f"{code(c.old_path)} → {code(c.path)}" if c.old_path else code(c.path)


def summary_line(r: NotebookReview, with_page: bool = True) -> str:
    c = r.change
    if c.error:
        return f"- {_title(r)} ({c.status}): **could not review:** {code(c.error)}"
    n = r.counts()
    text = f"- {_title(r)} ({c.status}): {n['added']} cell(s) added, {n['removed']} removed, {n['modified']} modified"
    if r.parameters:
        text += "; parameters: " + ", ".join(code(p) for p in r.parameters)
    lined = sum(1 for cell in r.cells if cell.note)
    if lined:
        text += f"; {lined} cell(s) diffed by lines (too large for nbdime)"
    if r.outputs:
        text += f"; **committed outputs in {len(r.outputs)} cell(s)**"
    if r.html and with_page:
        text += f"; page {code(r.html)}"
    return text


def _cell_block(cell) -> str:
    where = f"cell {cell.head_cell}" if cell.head_cell else f"cell {cell.base_cell} (base)"
    head = f"**{where}, {cell.cell_type}, {cell.kind}**"
    if cell.note:
        head += f" ({cell.note})"
    return f"{head}\n\n{fence(cell.diff or '(source unchanged)')}\n"


def render_markdown(reviews: list[NotebookReview], base: str, head: str, results: dict | None = None,
                    limit: int = MAX_COMMENT) -> str:
    top = [COMMENT_MARKER, f"## nbops review: {len(reviews)} notebook(s) changed ({code(base)} → {code(head)})", ""]
    with_outputs = [r for r in reviews if r.outputs]
    if with_outputs:
        top.append(f"**Committed outputs** in {len(with_outputs)} notebook(s) (`nbops check --fix` strips them):")
        for r in with_outputs:
            cells_shown = r.outputs[:5] + ([f"and {len(r.outputs) - 5} more cell(s)"] if len(r.outputs) > 5 else [])
            top.append(f"- {code(r.change.path)}: " + "; ".join(code(o) for o in cells_shown))
        top.append("")
    summary = [summary_line(r) for r in reviews]
    if len("\n".join(top + summary)) > limit - _RESERVE:
        summary = [summary_line(r, with_page=False) for r in reviews]
    text = "\n".join(top + summary + [""])
    if len(text) > limit - _RESERVE:  # hundreds of notebooks: names first, the rest in index.html
        keep: list[str] = []
        for line in summary:
            if len(text) + len("\n".join(keep + [line])) > limit - _RESERVE:
                break
            keep.append(line)
        text = "\n".join(top + keep + [f"- … and {len(summary) - len(keep)} more notebook(s): see index.html", ""])
    text += "\n"
    left: dict[str, int] = {}
    budget = limit - _RESERVE

    def add(block: str, path: str) -> bool:
        nonlocal text
        if len(text) + len(block) + 1 > budget:
            left[path] = left.get(path, 0) + 1
            return False
        text += block + "\n"
        return True

    if results:
        text += "### Results\n\n"
        for r in reviews:
            if r.change.path in results:
                add(f"#### {_title(r)}\n\n" + "\n".join(results[r.change.path]) + "\n", r.change.path)
    diffs = [r for r in reviews if r.cells]
    if diffs:
        text += "### Changed cells\n\n"
    for r in diffs:
        heading = f"#### {_title(r)}\n"
        if not add(heading, r.change.path):
            left[r.change.path] += len(r.cells) - 1
            continue
        for cell in r.cells:
            add(_cell_block(cell), r.change.path)
    if left:
        total = sum(left.values())
        names = [f"{code(p)} ({n})" for p, n in left.items()]
        shown: list[str] = []
        for name in names:
            if len(", ".join(shown + [name])) > _RESERVE - 400:
                break
            shown.append(name)
        more = f" and {len(names) - len(shown)} more notebook(s)" if len(shown) < len(names) else ""
        text += (f"**Left out for length** ({limit:,} characters): {total} cell diff(s) of "
                 f"{len(left)} notebook(s): {', '.join(shown)}{more}. "
                 "Every diff is in the HTML pages (index.html).\n")
    return text
