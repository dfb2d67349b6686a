"""review.md: the pull request comment. CommonMark whatever the notebooks contain.

Order: committed outputs per notebook, then every changed notebook with its summary line (always
all of them; a loosened gate is said there too), then `--run`'s results, then each notebook's
section: "What changed in how this notebook is judged" (review/judged.py: gates, model,
parameters, resources, kernel, data; its space is set aside before any diff, so a long diff never
hides a loosened gate), then its cell diffs while the size budget lasts, and last what was left
out. Each diff is in a fence longer than any backtick run in it, so no cell closes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbops.review.changes import NotebookReview
    from nbops.review.judged import Judged

MAX_COMMENT = 60_000  # GitHub's limit is 65,536 characters
COMMENT_MARKER = "<!-- nbops-review -->"  # CI finds its earlier comment by it and updates it
_RESERVE = 2_500  # kept for the note saying what was left out
_TICKS = re.compile("`+")
JUDGED_TITLE = "**What changed in how this notebook is judged**"
_JUDGED_LINES = 30  # per notebook; risks come first, the rest is in the notebook's HTML page


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
    others = len(r.judged) - len(r.parameters)
    if others > 0:
        text += f"; {others} change(s) in how it is judged"
    kinds = [j.what for j in r.risks()]
    if kinds:  # e.g. "⚠ 2 loosened gate(s)"
        text += " (**⚠ " + ", ".join(f"{kinds.count(k)} {k}(s)" for k in dict.fromkeys(kinds)) + "**)"
    lined = sum(1 for cell in r.cells if cell.note)
    if lined:
        text += f"; {lined} cell(s) diffed by lines (too large for nbdime)"
    if r.outputs:
        text += f"; **committed outputs in {len(r.outputs)} cell(s)**"
    if r.html and with_page:
        text += f"; page {code(r.html)}"
    return text


def _judged_line(j: Judged) -> str:
    return f"- **⚠ {j.what}**: {code(j.text)}" if j.risk else f"- {j.what}: {code(j.text)}"


def judged_block(r: NotebookReview, risks_only: bool = False) -> str:
    """The "What changed in how this notebook is judged" block ("" when nothing did)."""
    shown = r.risks() if risks_only else r.judged[:_JUDGED_LINES]
    if not shown:
        return ""
    lines = [JUDGED_TITLE, ""] + [_judged_line(j) for j in shown]
    if len(shown) < len(r.judged):
        where = f"the page {code(r.html)}" if r.html else "the notebook's HTML page"
        lines.append(f"- … and {len(r.judged) - len(shown)} more change(s): see {where}")
    return "\n".join(lines) + "\n"


def _cell_block(cell) -> str:
    where = f"cell {cell.head_cell}" if cell.head_cell else f"cell {cell.base_cell} (base)"
    head = f"**{where}, {cell.cell_type}, {cell.kind}**"
    if cell.note:
        head += f" ({cell.note})"
    return f"{head}\n\n{fence(cell.diff or '(source unchanged)')}\n"


@dataclass
class _Body:
    """The comment as it grows: its text, the room still kept for the judged blocks to come
    (PENDING), and how many diffs of each notebook were left out for length."""

    text: str
    budget: int
    pending: int = 0
    left: dict[str, int] = field(default_factory=dict)

    def add(self, block: str, path: str) -> bool:
        """BLOCK appended when it fits beside the kept room; else counted as left out."""
        if len(self.text) + len(block) + 1 + self.pending > self.budget:
            self.left[path] = self.left.get(path, 0) + 1
            return False
        self.text += block + "\n"
        return True


def _header(reviews: list[NotebookReview], base: str, head: str, graph: str) -> list[str]:
    """The marker, the title, the pipeline graph and the notebooks with committed outputs."""
    top = [COMMENT_MARKER, f"## nbops review: {len(reviews)} notebook(s) changed ({code(base)} → {code(head)})", ""]
    if graph:
        top += [graph]
    with_outputs = [r for r in reviews if r.outputs]
    if with_outputs:
        top.append(f"**Committed outputs** in {len(with_outputs)} notebook(s) (`nbops check --fix` strips them):")
        for r in with_outputs:
            cells_shown = r.outputs[:5] + ([f"and {len(r.outputs) - 5} more cell(s)"] if len(r.outputs) > 5 else [])
            top.append(f"- {code(r.change.path)}: " + "; ".join(code(o) for o in cells_shown))
        top.append("")
    return top


def _with_summary(top: list[str], reviews: list[NotebookReview], limit: int) -> str:
    """TOP and every notebook's summary line: without page names when they do not fit, and
    for hundreds of notebooks the first names only, the rest in index.html."""
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
    return text + "\n"


def _judged_blocks(reviews: list[NotebookReview], used: int, budget: int) -> dict[int, str]:
    """Each notebook's judged block by id(review), its room kept before results and diffs take
    theirs: when all of them do not fit, risks only; when not even those, none (the summary
    lines say the counts)."""
    judged = {id(r): f"#### {_title(r)}\n\n{b}\n" for r in reviews if (b := judged_block(r))}
    if used + sum(map(len, judged.values())) > budget:
        judged = {id(r): f"#### {_title(r)}\n\n{b}\n" for r in reviews if (b := judged_block(r, True))}
    if used + sum(map(len, judged.values())) > budget:
        return {}
    return judged


def _add_sections(body: _Body, reviews: list[NotebookReview], judged: dict[int, str]) -> None:
    """Each notebook's section: its judged block (its room was kept), then its cell diffs."""
    sections = [r for r in reviews if r.cells or judged.get(id(r))]
    if sections:
        body.text += "### Changes per notebook\n\n"
    for r in sections:
        heading = f"#### {_title(r)}\n"
        block = judged.get(id(r))
        if block:  # the heading and the judged block: their room was kept
            body.pending -= len(block)
            body.text += block
        elif not body.add(heading, r.change.path):
            body.left[r.change.path] += len(r.cells) - 1
            continue
        for cell in r.cells:
            body.add(_cell_block(cell), r.change.path)


def _left_out_note(left: dict[str, int], limit: int) -> str:
    """What was left out for length, naming as many notebooks as the reserved room holds."""
    total = sum(left.values())
    names = [f"{code(p)} ({n})" for p, n in left.items()]
    shown: list[str] = []
    for name in names:
        if len(", ".join(shown + [name])) > _RESERVE - 400:
            break
        shown.append(name)
    more = f" and {len(names) - len(shown)} more notebook(s)" if len(shown) < len(names) else ""
    return (f"**Left out for length** ({limit:,} characters): {total} cell diff(s) of "
            f"{len(left)} notebook(s): {', '.join(shown)}{more}. "
            "Every diff is in the HTML pages (index.html).\n")


def render_markdown(reviews: list[NotebookReview], base: str, head: str, results: dict | None = None,
                    limit: int = MAX_COMMENT, graph: str = "") -> str:
    """GRAPH: the pipeline graph's section (review/pipelines.py) when the change touches one."""
    text = _with_summary(_header(reviews, base, head, graph), reviews, limit)
    budget = limit - _RESERVE
    judged = _judged_blocks(reviews, len(text), budget)
    body = _Body(text, budget, pending=sum(map(len, judged.values())))
    if results:
        body.text += "### Results\n\n"
        for r in reviews:
            if r.change.path in results:
                body.add(f"#### {_title(r)}\n\n" + "\n".join(results[r.change.path]) + "\n", r.change.path)
    _add_sections(body, reviews, judged)
    if body.left:
        body.text += _left_out_note(body.left, limit)
    return body.text
